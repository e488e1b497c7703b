# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Print the node id (path::name) of every test a pytest JUnit XML report says failed or errored, one per line.

scripts/test.sh runs such tests once more, alone, after a stage that runs two tests at a time.
"""

import os
import sys
import xml.etree.ElementTree as ET


def failed(path):
    ids = []
    for case in ET.parse(path).getroot().iter('testcase'):
        if case.find('failure') is None and case.find('error') is None:
            continue
        module = case.get('classname', '')
        parts = module.split('.')
        # classname is the dotted module path, plus the class for a test in a class
        for cut in range(len(parts), 0, -1):
            candidate = '/'.join(parts[:cut]) + '.py'
            rest = parts[cut:]
            if not os.path.isfile(candidate):
                continue
            node = '::'.join([candidate] + rest + [case.get('name')])
            if node not in ids:
                ids.append(node)
            break
        else:
            raise SystemExit('no test file for %s in %s' % (module, path))
    return ids


if __name__ == '__main__':
    for node in failed(sys.argv[1]):
        print(node)
