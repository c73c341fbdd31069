"""Tests of the engine, mirroring statecharts/engine/: `test_<module>.py` tests `<module>.py`, and
`test_<module>_<topic>.py` one topic of it (an SCXML section: history, initial targets, done data,
delayed sends; a property test). The charts' own tests are in tests/statecharts/."""
