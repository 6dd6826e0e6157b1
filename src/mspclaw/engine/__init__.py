"""The reasoning loop. For now: the deterministic ``playbook`` runner and the approval gate."""
