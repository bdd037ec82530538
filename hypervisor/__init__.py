"""Plain Python, no Django: the only package that imports libvirt."""
