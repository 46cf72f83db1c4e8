import os
import sys

def main(argv):
    """Print the files; model.fit is not called here."""
    for name in os.listdir(argv[1] if len(argv) > 1 else "."):
        print(name)

main(sys.argv)
