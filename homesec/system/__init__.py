"""Small helpers that talk to the operating system: systemd notify, atomic writes, credentials.
(Named `system`, not `sys`, so it never shadows the standard library's `sys`.)
"""
