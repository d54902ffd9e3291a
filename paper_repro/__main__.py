from paper_repro.cli import main

raise SystemExit(main())
