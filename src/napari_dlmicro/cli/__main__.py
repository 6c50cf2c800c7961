import sys

from napari_dlmicro.cli import main

sys.exit(main())
