"""What every command shares and nothing else owns: errors, config, sizes, filesystems,
stage outputs and their commit protocol, logging. Imports no other project package."""
