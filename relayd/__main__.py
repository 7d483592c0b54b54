from __future__ import annotations

from relayd.main import main

raise SystemExit(main())
