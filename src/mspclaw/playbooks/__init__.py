"""Playbooks: the YAML format, the loader, the matcher and the shipped library."""
