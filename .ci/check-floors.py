"""The floor leg runs what it says: Python 3.10 and every pin of the constraints file.

pip applies constraints only to what it installs; a pin that no longer names a
dependency, or a version pip could not honour, would pass silently without this.
"""

import sys
from importlib.metadata import PackageNotFoundError, version

from packaging.requirements import Requirement

wrong = [] if sys.version_info[:2] == (3, 10) else [f"Python {sys.version.split()[0]}, not 3.10"]
for line in open(sys.argv[1]).read().splitlines():
    line = line.split("#")[0].strip()
    if not line:
        continue
    pin = Requirement(line)
    try:
        found = version(pin.name)
    except PackageNotFoundError:
        wrong.append(f"{pin.name} is not installed")
        continue
    if not pin.specifier.contains(found, prereleases=True):
        wrong.append(f"{pin.name} {found} is not {pin.specifier}")
if wrong:
    sys.exit("floor leg: " + "; ".join(wrong))
print(f"floor leg: Python 3.10 and the {sys.argv[1]} pins, as installed")
