"""PSA connectors (one file each) behind one small interface."""
