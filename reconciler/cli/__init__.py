"""The command-line front end: thin click commands over the stages (`reconciler --help`)."""
