#!/usr/bin/env python3
"""Interop server entry point: see interop/server.py and implementations/CONTRACT.md."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from interop.server import main

if __name__ == "__main__":
    sys.exit(main())
