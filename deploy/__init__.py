"""The deployment files, and the Python that renders and runs them.

A package, so that ``from deploy import localstack, render`` works with the
checkout on ``sys.path``. Never put ``deploy/`` itself there: its ``uwsgi/``
folder would shadow the ``uwsgi`` module the app looks for.
"""
