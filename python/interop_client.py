#!/usr/bin/env python3
"""Interop client entry point: see interop/client.py and implementations/CONTRACT.md."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from interop.client import main

if __name__ == "__main__":
    sys.exit(main())
