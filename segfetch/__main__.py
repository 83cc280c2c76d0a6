from segfetch.cli.main import main

raise SystemExit(main())
