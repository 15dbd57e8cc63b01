"""Alerts: the durable outbox, the worker thread that delivers it, and the email it sends.
"""
