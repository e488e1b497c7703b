"""vm_info and vm_attributes on the real hypervisor, as an operator runs them."""


def test_vm_info_reports_a_running_guest_as_an_unmanaged_active_domain(ansible, make_guest):
    name, uuid = make_guest('a')
    result = ansible.task('deferred.libvirt.vm_info', name=name)
    assert not result.get('failed'), result
    [inst] = result['instances']
    assert inst['uuid'] == uuid
    assert inst['managed'] is False
    assert inst['vm_state'] == 'active'
    assert inst['power_state'] == 'running'
    assert inst['memory_mb'] == 128 and inst['vcpus'] == 1


def test_vm_attributes_then_vm_info_shows_owner_and_guards(ansible, make_guest):
    name, _ = make_guest('a', start=False)
    changed = ansible.task('deferred.libvirt.vm_attributes', name=name, project='web', user='alice',
                           locked=True, lock_reason='audit', reclaim_interval='3d')
    assert changed['changed'] is True, changed
    again = ansible.task('deferred.libvirt.vm_attributes', name=name, project='web', user='alice',
                         locked=True, lock_reason='audit', reclaim_interval='3d')
    assert again['changed'] is False
    rc, info = ansible.adhoc('deferred.libvirt.vm_info', 'name=%s project=web' % name)
    assert rc == 0
    [inst] = info['instances']
    assert (inst['project'], inst['user'], inst['locked'], inst['lock_reason'], inst['reclaim_interval']) == \
        ('web', 'alice', True, 'audit', 3 * 86400)
    assert inst['vm_state'] == 'stopped' and inst['managed'] is True
    assert info['usage'] == {'web': {'instances': 1, 'cores': 1, 'ram_mb': 128}}
