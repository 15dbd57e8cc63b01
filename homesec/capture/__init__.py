"""The capture daemon's parts: the loop, the motion detector, the event tracker, the live
frame, snapshots and the status file. Nothing here is imported by the web workers except the
status-file reader (status.py), so this package's __init__ stays empty of imports.
"""
