import sys

from fhir3t.cli import main

sys.exit(main())
