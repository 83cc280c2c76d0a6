from segfetch.cli import main

raise SystemExit(main())
