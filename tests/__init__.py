"""The test suite: unit tests of the engines, integration tests over real sockets with real SDK clients and Redis."""
