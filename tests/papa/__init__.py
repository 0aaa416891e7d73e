"""Tests of papa: the process kernel and its client library."""
