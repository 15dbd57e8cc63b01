"""The alarm: its state machine (machine.py), how it is stored (persist.py), schedules
(schedule.py) and the camera's health and tamper checks (health.py)."""
