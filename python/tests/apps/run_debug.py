"""``app.run(debug=True)`` on the workers app: Werkzeug's reloader watcher plus its serving child.

Run as a script (``python apps/run_debug.py``) with ``PORT`` and the workers app's variables set.
"""

from __future__ import annotations

import os

from workers import app  # this script's folder is sys.path[0], in the watcher and in its child

if __name__ == "__main__":
    app.run(debug=True, port=int(os.environ["PORT"]))
