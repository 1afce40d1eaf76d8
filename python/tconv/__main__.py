from tconv.cli import main

raise SystemExit(main())
