"""The ``cebgw`` command line: one module per command group, each a thin shell over the stages."""
