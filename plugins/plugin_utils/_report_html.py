# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The trash report as one self-contained HTML page: inline CSS and JavaScript only, nothing fetched, opens offline."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from html import escape
import re

from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_time import human, human_bytes

CSS = u"""
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1d2329;
background:#f4f6f8}
header{background:#1f2d3d;color:#fff;padding:14px 24px}
header h1{font-size:20px;margin:0}
header p{margin:2px 0 0;color:#c7d2dd;font-size:13px}
main{max-width:1280px;margin:0 auto;padding:16px 24px 40px}
section{background:#fff;border:1px solid #dde3e9;border-radius:6px;margin:0 0 16px;padding:12px 16px}
h2{font-size:16px;margin:0 0 8px}
h3{font-size:14px;margin:12px 0 6px}
.banner{border-radius:6px;padding:10px 16px;margin:0 0 16px;font-weight:600}
.banner.ok{background:#e3f4e8;border:1px solid #8fcca0;color:#185c2c}
.banner.bad{background:#fdecea;border:1px solid #e6a19a;color:#7c1d14}
.banner ul{margin:6px 0 0 18px;padding:0;font-weight:400}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:0 0 16px}
.card{flex:1 1 150px;background:#fff;border:1px solid #dde3e9;border-radius:6px;padding:8px 12px}
.card b{display:block;font-size:22px}
.card span{color:#5a6772;font-size:12px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e8ecf0;vertical-align:top}
th{background:#eef2f5;position:sticky;top:0;cursor:pointer;user-select:none;white-space:nowrap}
th.sorted-asc::after{content:" \\25B2";font-size:10px}
th.sorted-desc::after{content:" \\25BC";font-size:10px}
td.num,th.num{text-align:right}
tr.due td{background:#fff6e0}
tr.expired td{background:#fdecea}
.tag{display:inline-block;border-radius:3px;padding:0 5px;margin:0 3px 2px 0;font-size:12px;background:#e8ecf0}
.tag.warn{background:#ffe8b3}
.tag.bad{background:#f8c9c4}
.tag.good{background:#cdebd6}
.muted{color:#5a6772}
.empty{color:#185c2c;font-weight:600}
code{font-size:12px}
.timeline{display:flex;gap:6px;align-items:flex-end;height:120px;margin:8px 0 4px}
.day{flex:1;text-align:center;font-size:12px}
.bar{background:#4f7cac;border-radius:3px 3px 0 0;margin:0 auto;width:70%;min-height:2px}
.day.overdue .bar{background:#c0392b}
.scroll{overflow-x:auto}
.filter{margin:0 0 16px}
.filter select{font:inherit;padding:2px 6px}
tr.filtered{display:none}
code.restore{white-space:pre-wrap;word-break:break-all}
"""

JS = u"""
(function(){
  function key(cell){var v=cell.getAttribute('data-sort');if(v===null){v=cell.textContent.trim();}
    var n=parseFloat(v);return (v!==''&&!isNaN(n)&&isFinite(v))?n:v.toLowerCase();}
  function sortBy(table,index,th){
    var body=table.tBodies[0];if(!body){return;}
    var asc=!th.classList.contains('sorted-asc');
    var heads=table.tHead.rows[0].cells;
    for(var i=0;i<heads.length;i++){heads[i].classList.remove('sorted-asc','sorted-desc');}
    th.classList.add(asc?'sorted-asc':'sorted-desc');
    var rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){var x=key(a.cells[index]),y=key(b.cells[index]);
      if(typeof x!==typeof y){x=String(x);y=String(y);}
      return (x<y?-1:x>y?1:0)*(asc?1:-1);});
    rows.forEach(function(r){body.appendChild(r);});
  }
  var filter=document.getElementById('project-filter');
  if(filter){filter.addEventListener('change',function(){
    var want=filter.value;
    document.querySelectorAll('tr[data-project]').forEach(function(row){
      row.classList.toggle('filtered',want!==''&&row.getAttribute('data-project')!==want);});
  });}
  document.querySelectorAll('table.sortable').forEach(function(table){
    if(!table.tHead){return;}
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,index){
      th.title='Sort by '+th.textContent.trim();
      th.addEventListener('click',function(){sortBy(table,index,th);});
    });
  });
})();
"""


def _e(value):
    return escape(u'' if value is None else u'%s' % value, quote=True)


def _id(value):
    """An id attribute from any text (an inventory hostname): only [A-Za-z0-9_.-], every other character as _hex_.

    Distinct texts keep distinct ids, and nothing a hostname holds can end the attribute or the tag.
    """
    return re.sub(r'[^A-Za-z0-9.-]', lambda m: '_%x_' % ord(m.group()), u'%s' % value)


def _cell(text, sort=None, cls=None):
    attrs = ''
    if sort is not None:
        attrs += ' data-sort="%s"' % _e(sort)
    if cls:
        attrs += ' class="%s"' % cls
    return '<td%s>%s</td>' % (attrs, text)


def _table(table_id, headers, rows, empty):
    if not rows:
        return '<p class="empty" id="%s-empty">%s</p>' % (_id(table_id), _e(empty))
    head = ''.join('<th%s>%s</th>' % (' class="num"' if h.endswith('#') else '', _e(h.rstrip('#'))) for h in headers)
    return ('<div class="scroll"><table class="sortable" id="%s"><thead><tr>%s</tr></thead><tbody>%s</tbody></table>'
            '</div>' % (_id(table_id), head, ''.join(rows)))


def _tags(item):
    tags = []
    if item.get('protected'):
        tags.append('<span class="tag good">protected</span>')
    if item.get('locked'):
        tags.append('<span class="tag warn">locked%s</span>' % (
            ': ' + _e(item['lock_reason']) if item.get('lock_reason') else ''))
    if item.get('task_state'):
        tags.append('<span class="tag warn">task %s</span>' % _e(item['task_state']))
    for reason in item.get('anomalies') or []:
        tags.append('<span class="tag bad">never reclaimed: %s</span>' % _e(reason))
    for warning in item.get('warnings') or []:
        if not warning.startswith(('protected', 'locked', 'task')):
            tags.append('<span class="tag warn">%s</span>' % _e(warning))
    return ''.join(tags) or '<span class="muted">-</span>'


def _mib(value):
    return '%d MiB' % ((value or 0) // 1048576)


def _trash_rows(items, with_host):
    rows = []
    for item in items:
        cls = 'expired' if item.get('overdue') else ('due' if item['due_soon'] else '')
        left = item['expires_in'] if item['expires_in'] is not None else 10 ** 12
        cells = []
        if with_host:
            cells.append(_cell(_e(item['host'])))
        cells += [
            _cell('<b>%s</b><br><code class="muted">%s</code>' % (_e(item['name']), _e(item['uuid'])), item['name']),
            _cell(_e(item['project'] or 'none')),
            _cell(_e(item['deleted_at'] or 'missing'), item['deleted_at'] or ''),
            _cell(_e(item['reclaim_at'] or 'missing'), item['reclaim_at'] or ''),
            _cell(_e(item['time_left'] if item['reclaimable'] else 'not reclaimed (see flags)'), left, 'num left'),
            _cell(_e(item['vcpus']), item['vcpus'], 'num'),
            _cell(_mib(item['memory_bytes']), item['memory_bytes'], 'num'),
            _cell(_e(item.get('disk_size') or 'unknown'), item.get('disk_bytes') or 0, 'num size'),
            _cell('<br>'.join(_e(d) for d in item['disks']) or '<span class="muted">none</span>', item['disk_count']),
            _cell(_e(item.get('user') or '-')),
            _cell(_e(item.get('deleted_by') or 'not recorded')),
            _cell('<code class="restore">%s</code>' % _e(item['restore_command']) if item.get('restore_command')
                  else '<span class="muted">by name (no plain UUID)</span>'),
            _cell(_tags(item), ' '.join(item['anomalies'] + item['warnings'])),
        ]
        rows.append('<tr class="%s" data-uuid="%s" data-project="%s">%s</tr>' % (
            cls, _e(item['uuid']), _e(item['project'] or ''), ''.join(cells)))
    return rows


TRASH_HEADERS = ['Domain', 'Project', 'deleted_at', 'reclaim_at', 'Time left#', 'vCPUs#', 'Memory#', 'On disk#',
                 'Disks', 'Owner', 'Deleted by', 'Restore command', 'Locks, protection, anomalies']


def _sweep_cells(sweep):
    if not sweep:
        return [_cell('<span class="tag warn">no sweep recorded</span>', '')] + [_cell('', 0, 'num')] * 4 + [_cell('')]
    counts = sweep.get('counts') or {}
    if not sweep.get('ran'):
        status = '<span class="tag bad">not swept</span> %s' % _e(sweep.get('msg'))
    elif sweep.get('ok'):
        status = '<span class="tag good">ok</span>'
    else:
        status = '<span class="tag bad">failed</span> %s' % _e(sweep.get('msg') or '')
    if sweep.get('check_mode'):
        status += ' <span class="tag">check mode</span>'
    if sweep.get('project'):
        status += ' <span class="tag">project %s only</span>' % _e(sweep['project'])
    when = _e(sweep.get('finished_at') or '?')
    if sweep.get('age_seconds') is not None:
        when += '<br><span class="muted">%s ago</span>' % _e(human(sweep['age_seconds']))
    duration = sweep.get('duration_seconds')
    return [_cell(when, sweep.get('finished_at') or ''),
            _cell(_e(counts.get('reclaimed', 0)), counts.get('reclaimed', 0), 'num'),
            _cell(_e(counts.get('failed', 0)), counts.get('failed', 0), 'num'),
            _cell(_e(counts.get('skipped', 0)), counts.get('skipped', 0), 'num'),
            _cell('%.2f s' % duration if duration is not None else '?', duration or 0, 'num'),
            _cell(status, 'ok' if sweep.get('ok') else 'failed')]


def render(report, title='Trash report'):
    """The page, as one string."""
    totals = report['totals']
    parts = []
    if report['ok']:
        parts.append('<div class="banner ok" id="status">Nothing is wrong: every host reported, every host\'s last '
                     'sweep succeeded, no record is unreadable and no Cinder work is pending.</div>')
    else:
        parts.append('<div class="banner bad" id="status">Needs attention (%d):<ul>%s</ul></div>' % (
            len(report['problems']), ''.join('<li>%s</li>' % _e(p) for p in report['problems'])))
    cards = [
        (totals['domains'], 'domains in the trash'),
        (human_bytes(totals.get('disk_bytes') or 0), 'on disk, freed by reclaiming the trash'),
        (totals.get('overdue', 0), 'overdue (the next sweep reclaims them)'),
        (totals['due_soon'], 'due within %s' % (report['warning_window'] or 'the window')),
        (totals['vcpus'], 'vCPUs in the trash'),
        (_mib(totals['memory_bytes']), 'memory in the trash'),
        (totals['pending_volumes'], 'Cinder volumes pending'),
        (len(report['anomalies']), 'never reclaimed (anomalies)'),
        ('%d / %d' % (len(report['hosts']) - len(report['missing']), len(report['hosts'])), 'hosts reported'),
    ]
    parts.append('<div class="cards">%s</div>' % ''.join('<div class="card"><b>%s</b><span>%s</span></div>'
                                                         % (_e(v), _e(t)) for v, t in cards))
    projects = sorted(set(p for p in report['projects']))
    parts.append('<div class="filter"><label for="project-filter">Project: </label><select id="project-filter">'
                 '<option value="">all projects</option>%s</select></div>' % ''.join(
                     '<option value="%s">%s</option>' % (_e(p), _e(p or 'none')) for p in projects))

    # Hosts and their last sweep.
    rows = []
    for host in sorted(report['hosts']):
        entry = report['hosts'][host]
        reported = '<span class="tag good">yes</span>' if entry['reported'] else \
            '<span class="tag bad">no</span> %s' % _e(entry['why'])
        rows.append('<tr>%s</tr>' % ''.join(
            [_cell('<b>%s</b>' % _e(host), host), _cell(reported, int(entry['reported'])),
             _cell(_e(entry['totals']['domains']), entry['totals']['domains'], 'num'),
             _cell(_e(entry['totals']['next_reclaim_at'] or '-'), entry['totals']['next_reclaim_at'] or '')]
            + _sweep_cells(entry.get('last_sweep'))))
    parts.append('<section id="hosts"><h2>Hosts and their last sweep</h2>%s</section>' % _table(
        'hosts-table', ['Host', 'Reported', 'In trash#', 'Next reclaim', 'Last sweep', 'Reclaimed#', 'Failed#',
                        'Skipped#', 'Duration#', 'Sweep status'], rows, 'No hosts in the play.'))

    # Per project.
    rows = []
    for project in sorted(report['projects']):
        proj = report['projects'][project]
        rows.append('<tr data-project="%s">%s</tr>' % (_e(project), ''.join([
            _cell('<b>%s</b>' % _e(project or 'none'), project),
            _cell(_e(proj['domains']), proj['domains'], 'num'),
            _cell(_e(human_bytes(proj.get('disk_bytes') or 0)), proj.get('disk_bytes') or 0, 'num'),
            _cell(_e(proj['vcpus']), proj['vcpus'], 'num'),
            _cell(_mib(proj['memory_bytes']), proj['memory_bytes'], 'num'),
            _cell(_e(proj['disks']), proj['disks'], 'num'), _cell(_e(proj.get('overdue', 0)), proj.get('overdue', 0), 'num'),
            _cell(_e(proj['due_soon']), proj['due_soon'], 'num'),
            _cell(_e(proj['next_reclaim_at'] or '-'), proj['next_reclaim_at'] or ''),
            _cell(_e(proj['pending_volumes']), proj['pending_volumes'], 'num'),
            _cell(_e(', '.join(proj['hosts'])))])))
    parts.append('<section id="projects"><h2>Per project</h2>%s</section>' % _table(
        'projects-table', ['Project', 'Domains#', 'On disk#', 'vCPUs#', 'Memory#', 'Disks#', 'Overdue#', 'Due soon#',
                           'Next reclaim',
                           'Cinder pending#', 'Hosts'], rows, 'The trash is empty in every project.'))

    # Timeline.
    most = max([b['count'] for b in report['timeline']] + [1])
    days = []
    for bucket in report['timeline']:
        cls = 'day overdue' if bucket['date'] is None and bucket['label'].startswith('overdue') else 'day'
        height = int(90 * bucket['count'] / most)
        days.append('<div class="%s" title="%s"><b>%d</b><div class="bar" style="height:%dpx"></div>%s</div>' % (
            cls, _e(', '.join(bucket['domains']) or 'nothing'), bucket['count'], height, _e(bucket['label'])))
    listed = ''.join('<li><b>%s</b>: %s</li>' % (_e(b['label']), _e(', '.join(b['domains'])))
                     for b in report['timeline'] if b['domains'])
    parts.append('<section id="timeline"><h2>What the next sweeps reclaim</h2><div class="timeline">%s</div>%s'
                 '</section>' % (''.join(days), '<ul>%s</ul>' % listed if listed else
                                 '<p class="empty">Nothing is due in the coming days.</p>'))

    # Overdue: reclaim_at passed, the next sweep reclaims them (apart from those merely due soon).
    parts.append('<section id="overdue"><h2>Overdue: the next sweep reclaims them</h2>%s</section>' % _table(
        'overdue-table', ['Host'] + TRASH_HEADERS, _trash_rows(report.get('overdue') or [], True),
        'Nothing is overdue.'))

    # Due within the warning window.
    if report['warning_window_seconds']:
        parts.append('<section id="due-soon"><h2>Due within the warning window (%s)</h2>%s</section>' % (
            _e(report['warning_window']), _table('due-table', ['Host'] + TRASH_HEADERS,
                                                 _trash_rows(report['due_soon'], True),
                                                 'Nothing is reclaimed within %s.' % report['warning_window'])))

    # Per host trash.
    host_parts = []
    for host in sorted(report['hosts']):
        entry = report['hosts'][host]
        if not entry['reported']:
            body = '<p class="tag bad">Did not report: %s</p>' % _e(entry['why'])
        else:
            body = _table('trash-%s' % host, TRASH_HEADERS, _trash_rows(entry['trash'], False),
                          'The trash is empty on %s.' % host)
        host_parts.append('<div class="host" id="host-%s"><h3>%s <span class="muted">(%d domain(s), %d in the trash)'
                          '</span></h3>%s</div>' % (_id(host), _e(host), entry['domains'], entry['totals']['domains'],
                                                    body))
    parts.append('<section id="trash"><h2>In the trash, per host</h2>%s</section>' % ''.join(host_parts))

    # Pending Cinder work.
    rows = []
    for tomb in (t for t in report['tombstones'] if t['volumes_pending']):
        vols = '<br>'.join('<code>%s</code>%s%s' % (
            _e(v['id']), ' <span class="tag">delete_on_termination</span>' if v.get('delete_on_termination') else '',
            ' <span class="muted">%s</span>' % _e(v['error']) if v.get('error') else '') for v in tomb['volumes_pending'])
        rows.append('<tr>%s</tr>' % ''.join([
            _cell(_e(tomb['host'])),
            _cell('<b>%s</b><br><code class="muted">%s</code>' % (_e(tomb['name']), _e(tomb['uuid'])), tomb['name']),
            _cell(_e(tomb['project'] or 'none')), _cell(_e(tomb['terminated_at'] or 'not finished')),
            _cell(_e(len(tomb['volumes_pending'])), len(tomb['volumes_pending']), 'num'), _cell(vols)]))
    parts.append('<section id="cinder"><h2>Terminated, with Cinder work pending</h2>%s<p class="muted">The next '
                 'sweep with Cinder configured finishes this work (rule 5 of docs/rules.md).</p></section>' % _table(
                     'cinder-table', ['Host', 'Domain', 'Project', 'terminated_at', 'Volumes#', 'Pending volumes'],
                     rows, 'No Cinder work is pending.'))

    # Disks kept while the fleet index was incomplete (rule 12): work left, never forgotten.
    rows = []
    for tomb in (t for t in report['tombstones'] if t.get('disks_pending')):
        disks = '<br>'.join('<code>%s</code>%s' % (_e(d.get('path') or '?'), ' <span class="muted">%s</span>'
                                                   % _e(d['reason']) if d.get('reason') else '')
                            for d in tomb['disks_pending'])
        rows.append('<tr>%s</tr>' % ''.join([
            _cell(_e(tomb['host'])),
            _cell('<b>%s</b><br><code class="muted">%s</code>' % (_e(tomb['name']), _e(tomb['uuid'])), tomb['name']),
            _cell(_e(tomb['project'] or 'none')), _cell(_e(tomb['terminated_at'] or 'not finished')),
            _cell(_e(len(tomb['disks_pending'])), len(tomb['disks_pending']), 'num'), _cell(disks)]))
    parts.append('<section id="disks-pending"><h2>Terminated, with disks pending</h2>%s<p class="muted">Kept because '
                 'a host of the fleet did not report: the next sweep with a complete fleet index deletes what is then '
                 'safe (rules 10 and 12).</p></section>' % _table(
                     'disks-pending-table', ['Host', 'Domain', 'Project', 'terminated_at', 'Disks#', 'Pending disks'],
                     rows, 'No disk is pending.'))

    # Skipped by the last sweep, and anomalies now.
    rows = []
    for item in report['skipped']:
        cls = 'bad' if item.get('kind') == 'anomaly' else 'warn'
        rows.append('<tr>%s</tr>' % ''.join([
            _cell(_e(item['host'])), _cell('<b>%s</b>' % _e(item.get('name')), item.get('name')),
            _cell(_e(item.get('project') or '-')),
            _cell('<span class="tag %s">%s</span>' % (cls, _e(item.get('kind')))), _cell(_e(item.get('reason')))]))
    anomalies = ''.join('<li><b>%s/%s</b> (project %s): %s</li>' % (
        _e(a['host']), _e(a['name']), _e(a['project'] or 'none'), _e('; '.join(a['reasons'])))
        for a in report['anomalies'])
    parts.append('<section id="skipped"><h2>Skipped by the last sweep, and why</h2>%s%s</section>' % (
        _table('skipped-table', ['Host', 'Domain', 'Project', 'Kind', 'Reason'], rows,
               'The last sweep skipped nothing.'),
        '<h3>Records the next sweep will skip (never reclaimed until fixed)</h3><ul id="anomalies">%s</ul>' % anomalies
        if anomalies else ''))

    page = (u'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            u'<meta name="viewport" content="width=device-width, initial-scale=1">'
            u'<link rel="icon" href="data:,"><title>%s</title><style>%s</style></head><body><header><h1>%s</h1>'
            u'<p>deferred.libvirt, generated %s over %d host(s); times are UTC, time left is as of generation.</p>'
            u'</header><main>%s</main><script>%s</script></body></html>\n')
    return page % (_e(title), CSS, _e(title), _e(report['generated_at']), len(report['hosts']), ''.join(parts), JS)
