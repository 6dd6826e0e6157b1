"""Tools for the people who develop MSPclaw, not for its users: nothing at run time imports them."""
