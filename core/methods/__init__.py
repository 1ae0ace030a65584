"""Methods: the registry (a leaf), the Spec, one frozen config and one function per compression method, deploy formats."""
