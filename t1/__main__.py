from t1.cli import main

raise SystemExit(main())
