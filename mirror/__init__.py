"""The connected side: fetch feeds, build knowledge snapshots, copy images, export bundles."""
