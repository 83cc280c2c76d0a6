"""Requirement sets and package indexes: what to fetch for an interpreter, fetched through
the engine. Imports the engine and the base modules, never the command line or testing."""
