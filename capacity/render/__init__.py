"""Render: the one shape every result is shown in, and the formats that write it.

``model`` (Report and Table), ``builders`` (a Report from each command's typed result) and
``formats/`` (one module per output format, each writing to a stream, found by one registry).
The terminal table lives in the CLI, the only place rich is used.
"""
