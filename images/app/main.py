#!/usr/bin/python3
"""The fixture application's entrypoint: it imports the old packages the scanner must find
reachable (requests, yaml) and prints their versions. It makes no network request."""

import requests
import yaml

print(yaml.safe_dump({"requests": requests.__version__, "yaml": yaml.__version__}), end="")
