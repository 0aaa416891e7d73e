"""ZODB's storage conformance suites against our client over our server."""
