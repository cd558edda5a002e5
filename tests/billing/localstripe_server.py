"""Runs localstripe (PyPI, GPL; used as an external tool, never copied) on 127.0.0.1:<port>, in memory only.

Its stock launcher listens on every interface and pickles its state to one fixed file in the temp folder after
every write; here its aiohttp app is served on loopback with that dump switched off.
"""

import sys

from aiohttp import web
from localstripe import resources, server


def main() -> None:
    port = int(sys.argv[1])
    resources.Store.dump_to_disk = lambda self: None
    web.run_app(server.app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
