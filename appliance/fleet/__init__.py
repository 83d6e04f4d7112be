"""The fleet: scan and gate jobs in a queue kept in PostgreSQL, and the workers that take them
(``stella worker``, ``stella rescan --queue``, ``stella queue status``; docs/scale-out.md).

:mod:`appliance.fleet.queue` reaches the queue (``STELLA_DATABASE_URL``), keeps its schema
and names the job kinds; :mod:`appliance.fleet.worker` is the worker loop and the jobs' bodies,
which call :mod:`appliance.rescan` for each image."""
