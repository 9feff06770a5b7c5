// Cockpit in Debian's Chromium, driven by playwright-core, for tests/cockpit/main.rs.
//
//   node page.mjs shell|machines|networks|storage
//
// Environment: COCKPIT_URL (cockpit-ws, logged in through its local session), ARTIFACTS (where
// the screenshots go), PROFILE (a fresh, empty Chromium profile directory), and for `machines`
// VM_RUNNING and VM_OFF (the names of a running and a shut-off VM), for `networks` NET_NEW (the
// name of the network to create through the page), for `storage` POOL, POOL_PATH, VOL_KEEP,
// VOL_DROP (an active dir pool, its target path and two of its volumes: the second is deleted
// through the page), POOL_NEW and POOL_NEW_PATH (a dir pool to create, at an existing
// directory). Every wait is bounded; the
// whole run is bounded by DEADLINE_SECS. Prints one line per step; exits 0 when every check
// held, 1 with the reason (and a failure screenshot) otherwise.
import { chromium } from 'playwright-core';
import path from 'node:path';

const mode = process.argv[2];
const base = process.env.COCKPIT_URL;
const artifacts = process.env.ARTIFACTS;
const profile = process.env.PROFILE;
const deadline = Number(process.env.DEADLINE_SECS || 180) * 1000;
if (!['shell', 'machines', 'networks', 'storage'].includes(mode) || !base || !artifacts || !profile) {
    console.error('usage: COCKPIT_URL=… ARTIFACTS=… PROFILE=… node page.mjs shell|machines|networks|storage');
    process.exit(2);
}

const STEP = 30_000; // one wait for the page
const STATE_CHANGE = 90_000; // a guest's shutdown under TCG included

const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
const t0 = Date.now();

// Console errors that Debian's cockpit-machines 288 bundle logs on every load, whatever the
// backend: its Redux was bundled without NODE_ENV=production, and noVNC's feature probe runs
// before <body> exists. Only these exact messages, and only from the Machines page's bundle.
const BUNDLE_NOISE = [
    /^You are currently using minified code outside of NODE_ENV === "production"\. This means that you are running a slower development build of Redux\./,
    /^Scrollbar test exception: TypeError: Cannot read properties of null \(reading 'appendChild'\)$/,
];
const fromMachinesBundle = url => /\/machines\/index\.js$/.test(url || '');

// Everything the page reports that means it is broken.
const problems = [];
// Rejected at the first page error: a wait for the page fails then, not at its timeout.
let crashed;
const crash = new Promise((_, reject) => { crashed = reject; });
crash.catch(() => {});
const orCrash = p => Promise.race([p, crash]);
let shots = 0;

let context;
const overall = setTimeout(() => {
    console.error(`FAIL: the browser run did not finish within ${deadline / 1000} s`);
    (context ? context.close() : Promise.resolve()).finally(() => process.exit(1));
}, deadline);

async function shot(page, name) {
    shots += 1;
    const file = path.join(artifacts, `${String(shots).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true, timeout: STEP });
    log('screenshot', file);
}

// The shell's "Ooops!" (an uncaught error in a page), danger alerts in the shell or the
// page's frame, page errors and console errors: none may be there.
async function findings(page, frame) {
    const found = [...problems];
    if (await page.locator('#navbar-oops').count() > 0) {
        found.push('the shell shows "Ooops!" (#navbar-oops)');
    }
    const alerts = '.pf-c-alert.pf-m-danger, .pf-v5-c-alert.pf-m-danger';
    for (const [where, root] of [['shell', page], ['page', frame]]) {
        if (!root) continue;
        const n = await root.locator(alerts).count();
        for (let i = 0; i < n; i++) {
            const text = await root.locator(alerts).nth(i).innerText().catch(() => '?');
            found.push(`a danger alert in the ${where}: ${text.replace(/\s+/g, ' ').trim()}`);
        }
    }
    // A value the page could not read from the domain XML shows as "undefined" or "NaN".
    if (frame) {
        const text = await frame.locator('body').innerText({ timeout: 5000 }).catch(() => '');
        const lines = text.split('\n').map(l => l.trim()).filter(l => l);
        lines.forEach((line, i) => {
            if (/\b(undefined|NaN)\b/.test(line)) {
                found.push(`the page shows "${i > 0 ? lines[i - 1] + ': ' : ''}${line}"`);
            }
        });
    }
    return [...new Set(found)];
}

async function assertClean(page, frame, what) {
    const found = await findings(page, frame);
    if (found.length) {
        throw new Error(`${what}: the page is not clean:\n  ${found.join('\n  ')}`);
    }
    log('clean:', what);
}

function watch(page) {
    page.on('pageerror', e => {
        problems.push(`pageerror: ${e.stack || e}`);
        log('pageerror', String(e));
        crashed(new Error(`the page crashed: ${e}`));
    });
    page.on('console', m => {
        const where = m.location();
        const at = where && where.url ? ` (${where.url}:${where.lineNumber})` : '';
        if (m.type() === 'warning' || m.type() === 'log' || m.type() === 'info') {
            log(`console.${m.type()}`, m.text().slice(0, 400) + at);
        }
        if (m.type() === 'error') {
            if (fromMachinesBundle(where && where.url) && BUNDLE_NOISE.some(r => r.test(m.text()))) {
                log('(known bundle noise)', m.text().slice(0, 80));
                return;
            }
            problems.push(`console error: ${m.text()}${at}`);
            log('console error', m.text() + at);
        }
    });
}

async function machinesFrame(page) {
    const sel = 'iframe[name="cockpit1:localhost/machines"]';
    await page.waitForSelector(sel, { timeout: STEP });
    return page.frameLocator(sel);
}

async function shell(page) {
    await page.goto(`${base}/`, { timeout: STEP });
    // The shell's navigation, with the Machines page's menu entry from its manifest.
    const nav = page.locator('#host-apps');
    await nav.waitFor({ timeout: STEP });
    await page.locator('#host-apps a', { hasText: 'Virtual machines' }).waitFor({ timeout: STEP });
    log('the shell lists "Virtual machines"');
    // The shell's own cockpit.js reaches virtbusd's org.libvirt through the bridge, on the
    // private system bus.
    const lib = await page.evaluate(() => new Promise((resolve, reject) => {
        const client = window.cockpit.dbus('org.libvirt', { bus: 'system' });
        client.call('/org/libvirt/QEMU', 'org.freedesktop.DBus.Properties', 'Get',
                    ['org.libvirt.Connect', 'LibVersion'])
                .then(r => resolve(r[0].v), e => reject(new Error(`${e.name}: ${e.message}`)));
    }));
    if (typeof lib !== 'number' || lib < 6000000) throw new Error(`LibVersion: ${lib}`);
    log('org.libvirt LibVersion through the bridge:', lib);
    // The Machines page's bundle, as the browser gets it.
    const res = await page.request.get(`${base}/cockpit/@localhost/machines/index.js`, { timeout: STEP });
    const body = await res.text();
    if (res.status() !== 200 || !body.includes('org.libvirt.Connect')) {
        throw new Error(`machines/index.js: HTTP ${res.status()}, ${body.length} bytes`);
    }
    log(`machines/index.js: ${body.length} bytes`);
    await shot(page, 'shell');
    await assertClean(page, null, 'the shell');
}

async function machines(page) {
    const on = process.env.VM_RUNNING;
    const off = process.env.VM_OFF;
    if (!on || !off) throw new Error('VM_RUNNING and VM_OFF are needed');
    const id = name => `#vm-${name}-system`;

    await page.goto(`${base}/machines`, { timeout: STEP });
    let frame = await machinesFrame(page);
    const state = name => frame.locator(`${id(name)}-state`);
    const waitState = async (name, want, timeout) => {
        try {
            await state(name).filter({ hasText: want }).waitFor({ timeout });
        } catch (e) {
            const got = await state(name).innerText({ timeout: 1000 }).catch(() => 'no state shown');
            throw new Error(`${name}: not "${want}" within ${timeout / 1000} s (shows "${got}")`);
        }
    };

    // The list: both VMs with their states.
    try {
        await frame.locator('#virtual-machines-listing').waitFor({ timeout: STEP });
    } catch (e) {
        throw new Error(`the VM list did not appear within ${STEP / 1000} s`);
    }
    await waitState(on, 'Running', STEP);
    await waitState(off, 'Shut off', STEP);
    log(`list: ${on} Running, ${off} Shut off`);
    await shot(page, 'list');
    await assertClean(page, frame, 'the VM list');

    // The running VM's page: overview, disks, network interfaces, consoles, snapshots.
    await frame.locator(`${id(on)}-name`).click({ timeout: STEP });
    const card = (what) => frame.locator(`#vm-${on}-${what}`);
    await card('overview').waitFor({ timeout: STEP });
    await shot(page, `${on}-overview`);
    await assertClean(page, frame, `${on}'s overview`);
    const cards = [
        ['disks', `${on}.qcow2`],
        ['networks', 'virtio'],
        ['consoles', 'VNC console'],
        ['snapshots', 'Create snapshot'],
    ];
    for (const [what, text] of cards) {
        const c = card(what);
        try {
            await c.waitFor({ timeout: STEP });
            await c.scrollIntoViewIfNeeded({ timeout: STEP });
            await c.filter({ hasText: text }).waitFor({ timeout: STEP });
        } catch (e) {
            const got = await c.innerText({ timeout: 1000 }).catch(() => 'not shown');
            throw new Error(`${on}'s ${what} card did not show "${text}": ${got}`);
        }
        log(`${on}: the ${what} card`);
        await shot(page, `${on}-${what}`);
        await assertClean(page, frame, `${on}'s ${what} card`);
    }

    // Back to the list; Shut down, Run, Force off from it.
    await page.goto(`${base}/machines`, { timeout: STEP });
    frame = await machinesFrame(page);
    await waitState(on, 'Running', STEP);

    await frame.locator(`${id(on)}-shutdown-button`).click({ timeout: STEP });
    await waitState(on, 'Shut off', STATE_CHANGE);
    log(`${on}: Shut down`);
    await shot(page, `${on}-shut-down`);
    await assertClean(page, frame, 'after Shut down');

    await frame.locator(`${id(off)}-run`).click({ timeout: STEP });
    await waitState(off, 'Running', STATE_CHANGE);
    log(`${off}: Run`);
    await shot(page, `${off}-run`);
    await assertClean(page, frame, 'after Run');

    await frame.locator(`${id(off)}-action-kebab`).click({ timeout: STEP });
    await frame.locator(`${id(off)}-forceOff`).click({ timeout: STEP });
    await waitState(off, 'Shut off', STATE_CHANGE);
    log(`${off}: Force off`);
    await shot(page, `${off}-force-off`);
    await assertClean(page, frame, 'after Force off');
}

// The Networks page (virtual networks of the system connection): `default` listed with its
// bridge, NAT and state, and its details (addresses, DHCP range) expanded; a network created
// through the page's dialog, activated, deactivated and deleted.
async function networks(page) {
    const made = process.env.NET_NEW;
    if (!made) throw new Error('NET_NEW is needed');
    const row = name => `network-${name}-system`;
    await page.goto(`${base}/machines#/networks`, { timeout: STEP });
    const frame = await machinesFrame(page);
    try {
        await frame.locator('#networks-listing').waitFor({ timeout: STEP });
    } catch (e) {
        throw new Error(`the network list did not appear within ${STEP / 1000} s`);
    }
    const state = name => frame.locator(`#${row(name)}-state`);
    const waitState = async (name, want) => {
        try {
            await state(name).filter({ hasText: new RegExp(`^${want}$`) }).waitFor({ timeout: STEP });
        } catch (e) {
            const got = await state(name).innerText({ timeout: 1000 }).catch(() => 'no state shown');
            throw new Error(`network ${name}: not "${want}" within ${STEP / 1000} s (shows "${got}")`);
        }
    };
    await waitState('default', 'active');
    const cell = async (id, want) => {
        const got = (await frame.locator(`#${id}`).innerText({ timeout: STEP })).trim();
        if (got !== want) throw new Error(`#${id} shows "${got}", not "${want}"`);
    };
    await cell(`${row('default')}-device`, 'virbr0');
    await cell(`${row('default')}-forwarding`, 'NAT');
    log('list: default, virbr0, NAT, active');
    await shot(page, 'networks');
    await assertClean(page, frame, 'the network list');

    // Its details: the row's expand toggle shows the overview.
    const tr = frame.locator(`tr[data-row-id="${row('default')}"]`);
    await tr.locator('td.pf-c-table__toggle button, td.pf-v5-c-table__toggle button').first()
            .click({ timeout: STEP });
    await frame.locator(`#${row('default')}-ipv4-address`).waitFor({ timeout: STEP });
    await cell(`${row('default')}-ipv4-address`, '192.168.122.1');
    await cell(`${row('default')}-ipv4-netmask`, '255.255.255.0');
    const body = await frame.locator('#networks-listing').innerText({ timeout: STEP });
    for (const text of ['192.168.122.2', '192.168.122.254']) {
        if (!body.includes(text)) throw new Error(`default's details lack "${text}": ${body}`);
    }
    log("default's details: address, netmask, DHCP range");
    await shot(page, 'default-details');
    await assertClean(page, frame, "default's details");

    // Create (the dialog's defaults: NAT, 192.168.100.1/24), activate, deactivate, delete.
    await frame.locator('#create-network').click({ timeout: STEP });
    const dialog = frame.locator('#create-network-dialog');
    await dialog.waitFor({ timeout: STEP });
    await frame.locator('#create-network-name').fill(made, { timeout: STEP });
    await shot(page, 'create-dialog');
    await dialog.locator('button.pf-m-primary', { hasText: 'Create' }).click({ timeout: STEP });
    try {
        await dialog.waitFor({ state: 'detached', timeout: STEP });
    } catch (e) {
        const got = await dialog.innerText({ timeout: 1000 }).catch(() => '?');
        throw new Error(`the create dialog stayed open: ${got}`);
    }
    await waitState(made, 'inactive');
    log(`${made}: created, inactive`);
    await shot(page, `${made}-created`);
    await assertClean(page, frame, `after creating ${made}`);

    await frame.locator(`#activate-${row(made)}`).click({ timeout: STEP });
    await waitState(made, 'active');
    log(`${made}: activated`);
    await shot(page, `${made}-active`);
    await assertClean(page, frame, `after activating ${made}`);

    await frame.locator(`#deactivate-${row(made)}`).click({ timeout: STEP });
    await waitState(made, 'inactive');
    log(`${made}: deactivated`);
    await assertClean(page, frame, `after deactivating ${made}`);

    await frame.locator(`#${row(made)}-action-kebab button`).first().click({ timeout: STEP });
    await frame.locator(`#delete-${row(made)}`).click({ timeout: STEP });
    await frame.locator('#delete-resource-modal-primary').click({ timeout: STEP });
    try {
        await frame.locator(`tr[data-row-id="${row(made)}"]`).waitFor({ state: 'detached', timeout: STEP });
    } catch (e) {
        throw new Error(`${made} is still listed after Delete`);
    }
    await waitState('default', 'active');
    log(`${made}: deleted`);
    await shot(page, `${made}-deleted`);
    await assertClean(page, frame, `after deleting ${made}`);
}

// A call to org.libvirt on the system bus through the shell's own cockpit.js (the bridge the
// page uses): the daemon's state, checked after each step of the page.
async function libvirt(page, objPath, iface, method, args, type) {
    return page.evaluate(([objPath, iface, method, args, type]) => new Promise((resolve, reject) => {
        const client = window.cockpit.dbus('org.libvirt', { bus: 'system' });
        client.call(objPath, iface, method, args, { type })
                .then(r => resolve(r), e => reject(new Error(`${method}: ${e.name}: ${e.message}`)))
                .finally(() => client.close());
    }), [objPath, iface, method, args, type]);
}

// The pool `name` as the daemon has it: null when it has none of that name.
async function poolState(page, name) {
    let found;
    try {
        found = await libvirt(page, '/org/libvirt/QEMU', 'org.libvirt.Connect',
                              'StoragePoolLookupByName', [name], 's');
    } catch (e) {
        if (/NO_STORAGE_POOL|no storage pool|pool not found/i.test(e.message)) return null;
        throw e;
    }
    const [props] = await libvirt(page, found[0], 'org.freedesktop.DBus.Properties', 'GetAll',
                                  ['org.libvirt.StoragePool'], 's');
    const state = { path: found[0], active: props.Active.v.v, autostart: props.Autostart.v.v };
    state.volumes = state.active
        ? (await libvirt(page, found[0], 'org.libvirt.StoragePool', 'ListStorageVolumes', [0], 'u'))[0].length
        : null;
    return state;
}

async function expectPool(page, name, want) {
    const got = await poolState(page, name);
    const ok = want === null
        ? got === null
        : got !== null && Object.entries(want).every(([k, v]) => got[k] === v);
    if (!ok) throw new Error(`the daemon's pool ${name}: ${JSON.stringify(got)}, not ${JSON.stringify(want)}`);
    log(`daemon: pool ${name}`, JSON.stringify(want));
}

// The Storage pools page of the system connection: an active dir pool listed with its size and
// state, its overview (target path, type) and volumes (names, sizes) expanded, one volume
// deleted; a dir pool created through the page's dialog, activated, deactivated and deleted.
// The daemon's state is read back (through the bridge) after every step.
async function storage(page) {
    const pool = process.env.POOL;
    const poolPath = process.env.POOL_PATH;
    const keep = process.env.VOL_KEEP;
    const drop = process.env.VOL_DROP;
    const made = process.env.POOL_NEW;
    const madePath = process.env.POOL_NEW_PATH;
    if (![pool, poolPath, keep, drop, made, madePath].every(v => v)) {
        throw new Error('POOL, POOL_PATH, VOL_KEEP, VOL_DROP, POOL_NEW and POOL_NEW_PATH are needed');
    }
    const row = name => `pool-${name}-system`;
    await page.goto(`${base}/machines#/storages`, { timeout: STEP });
    const frame = await machinesFrame(page);
    try {
        await frame.locator('#storage-pools-listing').waitFor({ timeout: STEP });
    } catch (e) {
        throw new Error(`the storage pool list did not appear within ${STEP / 1000} s`);
    }
    const state = name => frame.locator(`#${row(name)}-state`);
    const waitState = async (name, want) => {
        try {
            await state(name).filter({ hasText: new RegExp(`^${want}$`) }).waitFor({ timeout: STEP });
        } catch (e) {
            const got = await state(name).innerText({ timeout: 1000 }).catch(() => 'no state shown');
            throw new Error(`pool ${name}: not "${want}" within ${STEP / 1000} s (shows "${got}")`);
        }
    };
    const cell = async (id, want) => {
        const got = (await frame.locator(`#${id}`).innerText({ timeout: STEP })).trim();
        if (got !== want) throw new Error(`#${id} shows "${got}", not "${want}"`);
    };
    await waitState(pool, 'active');
    const tr = frame.locator(`tr[data-row-id="${row(pool)}"]`);
    const size = await tr.innerText({ timeout: STEP });
    if (!/\d+(\.\d+)? \/ \d+(\.\d+)? GiB/.test(size)) throw new Error(`${pool}'s row shows no size: ${size}`);
    log(`list: ${pool}, active, ${size.replace(/\s+/g, ' ')}`);
    await expectPool(page, pool, { active: true, volumes: 2 });
    await shot(page, 'pools');
    await assertClean(page, frame, 'the storage pool list');

    // Its details: the overview, then the volumes tab.
    await tr.locator('td.pf-c-table__toggle button, td.pf-v5-c-table__toggle button').first()
            .click({ timeout: STEP });
    await frame.locator(`#${row(pool)}-target-path`).waitFor({ timeout: STEP });
    await cell(`${row(pool)}-target-path`, poolPath);
    await cell(`${row(pool)}-type`, 'dir');
    await cell(`${row(pool)}-persistent`, 'yes');
    log(`${pool}'s overview: target path, type, persistent`);
    await shot(page, `${pool}-overview`);
    await assertClean(page, frame, `${pool}'s overview`);

    await frame.locator('button[role="tab"]:visible', { hasText: /^Storage volumes$/ }).first().click({ timeout: STEP });
    const vol = (name, what) => frame.locator(`[id="${row(pool)}-volume-${name}-${what}"]`);
    for (const name of [keep, drop]) {
        try {
            await vol(name, 'name').waitFor({ timeout: STEP });
        } catch (e) {
            throw new Error(`${pool}'s volume ${name} is not listed`);
        }
    }
    const keepSize = (await vol(keep, 'size').innerText({ timeout: STEP })).trim();
    if (!/ \/ 1 GB$/.test(keepSize)) throw new Error(`${keep}'s size shows "${keepSize}", not "… / 1 GB"`);
    log(`${pool}'s volumes: ${keep} (${keepSize}), ${drop}`);
    await shot(page, `${pool}-volumes`);
    await assertClean(page, frame, `${pool}'s volumes`);

    // Delete one volume: select its row, "Delete 1 volume".
    // (the innermost row: the pool's row, holding the volume table, has it too)
    await frame.locator('tr', { has: vol(drop, 'name') }).last().locator('input[type="checkbox"]')
            .check({ timeout: STEP });
    await frame.locator('#storage-volumes-delete').click({ timeout: STEP });
    try {
        await vol(drop, 'name').waitFor({ state: 'detached', timeout: STEP });
    } catch (e) {
        throw new Error(`${drop} is still listed after Delete`);
    }
    await vol(keep, 'name').waitFor({ timeout: STEP });
    await expectPool(page, pool, { active: true, volumes: 1 });
    log(`${drop}: deleted`);
    await shot(page, `${drop}-deleted`);
    await assertClean(page, frame, `after deleting ${drop}`);

    // Create a dir pool through the dialog (its target picked in the file chooser).
    await frame.locator('#create-storage-pool').click({ timeout: STEP });
    const dialog = frame.locator('#create-storage-pool-dialog');
    await dialog.waitFor({ timeout: STEP });
    await frame.locator('#storage-pool-dialog-name').fill(made, { timeout: STEP });
    const target = frame.locator('#storage-pool-dialog-target-group');
    await target.locator('input').first().fill(`${madePath}/`, { timeout: STEP });
    await target.locator('.pf-c-select__menu-item, .pf-v5-c-select__menu-item, [role="option"]',
                         { hasText: new RegExp(`^${madePath}/?$`) })
            .first().click({ timeout: STEP });
    await shot(page, 'create-dialog');
    await dialog.locator('button.pf-m-primary', { hasText: 'Create' }).click({ timeout: STEP });
    try {
        await dialog.waitFor({ state: 'detached', timeout: STEP });
    } catch (e) {
        const got = await dialog.innerText({ timeout: 1000 }).catch(() => '?');
        throw new Error(`the create dialog stayed open: ${got}`);
    }
    await waitState(made, 'inactive');
    await expectPool(page, made, { active: false, autostart: true });
    log(`${made}: created, inactive`);
    await shot(page, `${made}-created`);
    await assertClean(page, frame, `after creating ${made}`);

    await frame.locator(`#activate-${row(made)}`).click({ timeout: STEP });
    await waitState(made, 'active');
    await expectPool(page, made, { active: true, volumes: 0 });
    log(`${made}: activated`);
    await shot(page, `${made}-active`);
    await assertClean(page, frame, `after activating ${made}`);

    await frame.locator(`#deactivate-${row(made)}`).click({ timeout: STEP });
    await waitState(made, 'inactive');
    await expectPool(page, made, { active: false });
    log(`${made}: deactivated`);
    await assertClean(page, frame, `after deactivating ${made}`);

    await frame.locator(`#${row(made)}-action-kebab button`).first().click({ timeout: STEP });
    await frame.locator(`#delete-${row(made)}`).click({ timeout: STEP });
    const modal = frame.locator('#storage-pool-delete-modal');
    await modal.waitFor({ timeout: STEP });
    await modal.locator('button.pf-m-danger', { hasText: 'Delete' }).click({ timeout: STEP });
    try {
        await frame.locator(`tr[data-row-id="${row(made)}"]`).waitFor({ state: 'detached', timeout: STEP });
    } catch (e) {
        const got = await modal.innerText({ timeout: 1000 }).catch(() => 'no dialog');
        throw new Error(`${made} is still listed after Delete: ${got}`);
    }
    await expectPool(page, made, null);
    await waitState(pool, 'active');
    log(`${made}: deleted`);
    await shot(page, `${made}-deleted`);
    await assertClean(page, frame, `after deleting ${made}`);
}

let code = 0;
try {
    context = await chromium.launchPersistentContext(profile, {
        executablePath: '/usr/bin/chromium',
        headless: true,
        args: [
            '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync',
        ],
        viewport: { width: 1280, height: 900 },
        timeout: STEP,
    });
    context.setDefaultTimeout(STEP);
    // This machine runs guests under TCG: its CPU has no VMX/SVM for virt-host-validate, and
    // the Machines page would show its "Hardware virtualization is disabled" notice instead
    // of the list. Dismissed beforehand, as its "Ignore" button does (the page keeps that in
    // localStorage under this key).
    await context.addInitScript(() => {
        try {
            window.localStorage.setItem('virtualization-disabled-ignored', 'true');
        } catch (e) { /* a page without storage */ }
    });
    const page = context.pages()[0] || await context.newPage();
    watch(page);
    try {
        const run = { shell, machines, networks, storage }[mode](page);
        run.catch(() => {}); // when a crash wins the race, its end is not awaited
        await orCrash(run);
        log('PASS');
    } catch (e) {
        code = 1;
        console.error(`FAIL: ${e.message}`);
        const frameSel = 'iframe[name="cockpit1:localhost/machines"]';
        const frame = mode !== 'shell' ? page.frameLocator(frameSel) : null;
        const found = await findings(page, frame).catch(() => problems);
        for (const p of found) console.error(`  ${p}`);
        try {
            await page.screenshot({ path: path.join(artifacts, 'failure.png'), fullPage: true, timeout: 10_000 });
            log('screenshot', path.join(artifacts, 'failure.png'));
            const frame = page.frames().find(f => f.name() === 'cockpit1:localhost/machines');
            const text = await (frame || page).locator('body').innerText({ timeout: 5000 });
            console.error(`the page says:\n${text.slice(0, 2000)}`);
        } catch (e2) {
            console.error(`(no failure screenshot: ${e2.message})`);
        }
    }
} catch (e) {
    code = 1;
    console.error(`FAIL: the browser: ${e.stack || e}`);
} finally {
    if (context) await context.close().catch(() => {});
    clearTimeout(overall);
}
process.exit(code);
