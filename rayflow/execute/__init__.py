"""Execute: pure run state, the one control loop, and executors behind a narrow port.

``port`` (the Executor protocol, where outputs go), ``state`` (pure transitions), ``loop``
(the control loop), ``local`` (the synchronous executor), ``worker/`` (what runs inside a
worker: no ray), ``ray/`` (the Ray adapter, one strategy per call kind: the only package
here that imports ray).
"""
