# npm's dependencies are installed next to the script; nothing in them is a Python test.
collect_ignore = ["node_modules"]
