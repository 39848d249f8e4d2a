"""The CloudStack-compatible command endpoint: ``/client/api?command=…&response=json``."""
