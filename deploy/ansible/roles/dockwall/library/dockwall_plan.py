#!/usr/bin/python
# -*- coding: utf-8 -*-
# The kernel's side of check mode: `dockwall plan --detailed-exitcode` as a module, so that a
# task reports changed exactly when apply would change the kernel, and --diff shows plan's
# policy-level summary. It touches nothing, so it runs the same in check mode.
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: dockwall_plan
short_description: What dockwall apply would change in the kernel
description:
  - Runs C(dockwall plan --json --detailed-exitcode). Changed when apply would change the kernel
    (also when the kernel drifted from the applied policy). In diff mode the diff is plan's
    policy-level summary. Never changes anything; supports check mode.
options:
  executable:
    description: The dockwall command.
    type: path
    required: true
  policy:
    description: The policy file to plan.
    type: path
    required: true
  state_dir:
    description: dockwall's state directory (--state-dir).
    type: path
'''

RETURN = r'''
summary:
  description: Plan's policy-level summary, one line per change.
  type: list
  elements: str
  returned: always
'''

import json

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec=dict(
            executable=dict(type='path', required=True),
            policy=dict(type='path', required=True),
            state_dir=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    cmd = [p['executable']]
    if p['state_dir']:
        cmd += ['--state-dir', p['state_dir']]
    cmd += ['plan', '--json', '--detailed-exitcode', '-c', p['policy']]
    rc, out, err = module.run_command(cmd)
    # 0 nothing would change, 2 something would, anything else an error (plan says why on stderr).
    if rc not in (0, 2):
        module.fail_json(msg='dockwall plan failed (exit %d): %s' % (rc, err.strip()), rc=rc, stdout=out, stderr=err)
    try:
        plan = json.loads(out)
        summary = [str(c['text']) for c in plan['summary']]
    except (ValueError, KeyError, TypeError) as e:
        module.fail_json(msg='dockwall plan printed no plan this module can read (%s)' % e, rc=rc, stdout=out, stderr=err)
    changed = rc == 2
    # Not "rc": Ansible takes a result's non-zero rc for a failure.
    result = dict(changed=changed, summary=summary, plan_exit=rc)
    for line in err.splitlines():
        if line.strip():
            module.warn(line.strip())
    if changed and module._diff:
        result['diff'] = dict(
            before_header='the kernel now',
            after_header=p['policy'],
            prepared='\n'.join(summary or ['rules change (the policy reads the same: a repair)']) + '\n',
        )
    module.exit_json(**result)


if __name__ == '__main__':
    main()
