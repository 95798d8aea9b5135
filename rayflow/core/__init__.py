"""The vocabulary every layer shares: states, typed records that cross ports, component
options, the blueprint and its templates, groups, the exception tree. Pure: imports
nothing of rayflow outside ``core``, and no third-party package."""
