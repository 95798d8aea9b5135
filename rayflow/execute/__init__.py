"""Execute: pure run state, the one control loop, and executors behind a narrow port.

``state`` (pure transitions), ``invoke`` (the worker-side call), ``loop`` (the control
loop), ``local`` (synchronous executor), ``ray_executor``/``ray_session`` (the Ray
adapters: the only modules here that import ray).
"""
