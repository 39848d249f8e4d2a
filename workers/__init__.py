"""Distributed execution on Celery: the app, the task, the runner that publishes jobs, and
the choice of queues a worker consumes. Tasks are thin: the job row says what to do."""
