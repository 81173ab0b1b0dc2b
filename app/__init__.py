"""The top layer: the `evalgrid` command and the demo.

It may import every other package (evalgrid, coordinator, site_agent, tui); none of them imports
it (tests/test_layering.py holds that), so `evalgrid/` stays the shared bottom layer.
"""
