"""A bare Django project for bench/participant_loop.py: one view, one indexed SELECT + one INSERT.

It is the baseline H-Mix is compared with, served by the same gunicorn configuration on the same
PostgreSQL, so the comparison shows what H-Mix adds on top of Django, not what the machine can do.
"""
