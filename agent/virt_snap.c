/*
 * VM snapshots through libvirt: see virt_snap.h for the scheme (internal
 * qcow2 snapshots for both kinds), carve's records and how each command
 * stays idempotent.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>
#include <libxml/tree.h>
#include <libxml/xmlwriter.h>

#include "agent/virt_ops.h"
#include "agent/virt_snap.h"
#include "agent/virt_xml.h"
#include "common/ids.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/xalloc.h"

#define SNAP_TAG          "carve:1"
#define SNAP_DESC_MAX     256
/* A snapshot's XML holds the whole domain; the domain's XML alone. */
#define SNAP_XML_MAX      (4 * 1024 * 1024)
#define SNAP_CACHE_MAX    (64 * 1024)
#define SNAP_AGENT_CHANNEL "org.qemu.guest_agent.0"
#define GIB_MIB           1024

uint64_t
virt_snap_estimate_gib(uint64_t memory_mib)
{
	return (memory_mib + GIB_MIB - 1) / GIB_MIB;
}

/* ------------------------------------------------------------ records */

/* A created_at: decimal digits only, no sign, no overflow. */
static int
snap_parse_ms(const char *s, int64_t *out)
{
	int64_t v = 0;

	if (*s == '\0' || strlen(s) > 18)
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	*out = v;
	return 0;
}

char *
virt_snap_description(const struct virt_snap_rec *rec)
{
	return xasprintf("%s kind=%s command_id=%s created_at=%" PRId64,
	    SNAP_TAG, vm_snapshot_kind_name(rec->sr_snap.snap_kind),
	    rec->sr_command_id, rec->sr_snap.snap_created_at_ms);
}

static bool
snap_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int
virt_snap_parse_description(const char *text, struct virt_snap_rec *rec)
{
	char buf[SNAP_DESC_MAX];
	bool seen_kind = false, seen_cmd = false, seen_at = false;
	struct virt_snap_rec r;
	size_t len, tag = strlen(SNAP_TAG);
	char *p;

	while (snap_is_space(*text))
		text++;
	len = strlen(text);
	while (len > 0 && snap_is_space(text[len - 1]))
		len--;
	if (len >= sizeof(buf) || len <= tag + 1)
		return -1;
	memcpy(buf, text, len);
	buf[len] = '\0';
	if (strncmp(buf, SNAP_TAG, tag) != 0 || buf[tag] != ' ')
		return -1;
	memset(&r, 0, sizeof(r));
	for (p = buf + tag + 1; p != NULL; ) {
		char *end = strchr(p, ' '), *val;

		if (end != NULL)
			*end = '\0';
		if ((val = strchr(p, '=')) == NULL)
			return -1;
		*val++ = '\0';
		if (strcmp(p, "kind") == 0 && !seen_kind) {
			if (vm_snapshot_kind_parse(val,
			    &r.sr_snap.snap_kind) < 0)
				return -1;
			seen_kind = true;
		} else if (strcmp(p, "command_id") == 0 && !seen_cmd) {
			if (!ids_uuid_valid(val))
				return -1;
			ids_uuid_normalize(val, r.sr_command_id);
			seen_cmd = true;
		} else if (strcmp(p, "created_at") == 0 && !seen_at) {
			if (snap_parse_ms(val,
			    &r.sr_snap.snap_created_at_ms) < 0)
				return -1;
			seen_at = true;
		} else {
			return -1;
		}
		p = end != NULL ? end + 1 : NULL;
	}
	if (!seen_kind || !seen_cmd || !seen_at)
		return -1;
	rec->sr_snap.snap_kind = r.sr_snap.snap_kind;
	rec->sr_snap.snap_created_at_ms = r.sr_snap.snap_created_at_ms;
	memcpy(rec->sr_command_id, r.sr_command_id, sizeof(rec->sr_command_id));
	return 0;
}

/* ------------------------------------------------------------ writing XML */

/* xmlTextWriter fails only on allocation or misuse: check once at the end. */
struct snap_w {
	xmlBufferPtr buf;
	xmlTextWriterPtr w;
	bool failed;
};

static void
sw_init(struct snap_w *x)
{
	x->failed = false;
	x->w = NULL;
	if ((x->buf = xmlBufferCreate()) == NULL ||
	    (x->w = xmlNewTextWriterMemory(x->buf, 0)) == NULL)
		x->failed = true;
}

static void
sw_check(struct snap_w *x, int rc)
{
	if (rc < 0)
		x->failed = true;
}

static void
sw_start(struct snap_w *x, const char *name)
{
	if (!x->failed)
		sw_check(x, xmlTextWriterStartElement(x->w, BAD_CAST name));
}

static void
sw_end(struct snap_w *x)
{
	if (!x->failed)
		sw_check(x, xmlTextWriterEndElement(x->w));
}

static void
sw_attr(struct snap_w *x, const char *name, const char *value)
{
	if (!x->failed)
		sw_check(x, xmlTextWriterWriteAttribute(x->w, BAD_CAST name,
		    BAD_CAST value));
}

static void
sw_text(struct snap_w *x, const char *name, const char *text)
{
	if (!x->failed)
		sw_check(x, xmlTextWriterWriteElement(x->w, BAD_CAST name,
		    BAD_CAST text));
}

static char *
sw_finish(struct snap_w *x, const char *what, struct carve_error *err)
{
	char *out = NULL;

	if (x->w != NULL) {
		if (xmlTextWriterFlush(x->w) < 0)
			x->failed = true;
		xmlFreeTextWriter(x->w);
	}
	if (!x->failed)
		out = xstrdup((const char *)xmlBufferContent(x->buf));
	else
		error_set(err, CARVE_EINTERNAL, "could not build the %s", what);
	if (x->buf != NULL)
		xmlBufferFree(x->buf);
	return out;
}

char *
virt_snap_create_xml(const struct virt_snap_rec *rec, struct carve_error *err)
{
	struct snap_w x;
	char *desc = virt_snap_description(rec);

	sw_init(&x);
	sw_start(&x, "domainsnapshot");
	sw_text(&x, "name", rec->sr_snap.snap_name);
	sw_text(&x, "description", desc);
	sw_end(&x);
	free(desc);
	return sw_finish(&x, "snapshot XML", err);
}

static const char *const snap_phase_names[] = {
	[VIRT_SNAP_PHASE_NONE] = "none",
	[VIRT_SNAP_PHASE_BEFORE] = "before",
	[VIRT_SNAP_PHASE_AFTER] = "after",
	[VIRT_SNAP_PHASE_DONE] = "done",
};
#define SNAP_NPHASES (sizeof(snap_phase_names) / sizeof(snap_phase_names[0]))

char *
virt_snap_cache_xml(const struct virt_snap_cache *c, struct carve_error *err)
{
	struct snap_w x;
	char num[24];

	sw_init(&x);
	sw_start(&x, "snapshots");
	for (unsigned i = 0; i < c->sc_n && i < VM_SNAPSHOTS_MAX; i++) {
		const struct virt_snap_rec *r = &c->sc_recs[i];

		sw_start(&x, "snapshot");
		sw_attr(&x, "name", r->sr_snap.snap_name);
		sw_attr(&x, "kind",
		    vm_snapshot_kind_name(r->sr_snap.snap_kind));
		snprintf(num, sizeof(num), "%" PRId64,
		    r->sr_snap.snap_created_at_ms);
		sw_attr(&x, "created_at", num);
		if (r->sr_command_id[0] != '\0')
			sw_attr(&x, "command_id", r->sr_command_id);
		sw_end(&x);
	}
	if (c->sc_phase != VIRT_SNAP_PHASE_NONE &&
	    (size_t)c->sc_phase < SNAP_NPHASES) {
		sw_start(&x, "revert");
		sw_attr(&x, "command_id", c->sc_revert_cmd);
		sw_attr(&x, "was_running", c->sc_was_running ? "yes" : "no");
		sw_attr(&x, "phase", snap_phase_names[c->sc_phase]);
		sw_end(&x);
	}
	sw_end(&x);
	return sw_finish(&x, "snapshot records", err);
}

/* ------------------------------------------------------------ reading XML */

static bool
snap_elem(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE &&
	    xmlStrcmp(n->name, BAD_CAST name) == 0;
}

/* Element content as a new string (free), NULL when too long. */
static char *
snap_content(xmlNode *n, size_t max)
{
	xmlChar *t = xmlNodeGetContent(n);
	char *s = NULL;

	if (t != NULL && strlen((const char *)t) <= max)
		s = xstrdup((const char *)t);
	xmlFree(t);
	return s;
}

/* An attribute as a new string (free), or NULL when absent or too long. */
static char *
snap_attr(xmlNode *n, const char *name, size_t max)
{
	xmlChar *t = xmlGetNoNsProp(n, BAD_CAST name);
	char *s = NULL;

	if (t != NULL && strlen((const char *)t) <= max)
		s = xstrdup((const char *)t);
	xmlFree(t);
	return s;
}

static bool
snap_attr_is(xmlNode *n, const char *name, const char *value)
{
	xmlChar *t = xmlGetNoNsProp(n, BAD_CAST name);
	bool is = t != NULL && xmlStrcmp(t, BAD_CAST value) == 0;

	xmlFree(t);
	return is;
}

static int
snap_parse_xml_root(xmlNode *root, struct virt_snap_info *out,
    struct carve_error *err)
{
	struct virt_snap_info si;
	char *name = NULL, *desc = NULL, *v;
	int64_t created_s = 0;
	int rc = -1;

	memset(&si, 0, sizeof(si));
	if (!snap_elem(root, "domainsnapshot"))
		return error_set(err, CARVE_EINVAL,
		    "snapshot XML has no <domainsnapshot> root");
	for (xmlNode *n = root->children; n != NULL; n = n->next) {
		if (snap_elem(n, "name")) {
			free(name);
			name = snap_content(n, IDS_NAME_MAX * 4);
		} else if (snap_elem(n, "description")) {
			free(desc);
			desc = snap_content(n, SNAP_DESC_MAX);
		} else if (snap_elem(n, "state")) {
			v = snap_content(n, sizeof(si.si_state) - 1);
			if (v != NULL)
				snprintf(si.si_state, sizeof(si.si_state), "%s",
				    v);
			free(v);
		} else if (snap_elem(n, "creationTime")) {
			if ((v = snap_content(n, 20)) == NULL ||
			    snap_parse_ms(v, &created_s) < 0 ||
			    created_s > INT64_MAX / 1000) {
				free(v);
				error_set(err, CARVE_EINVAL,
				    "snapshot XML has a bad creationTime");
				goto out;
			}
			free(v);
		} else if (snap_elem(n, "memory")) {
			if (snap_attr_is(n, "snapshot", "internal"))
				si.si_memory = true;
			else if (snap_attr_is(n, "snapshot", "external"))
				si.si_memory = si.si_external = true;
		} else if (snap_elem(n, "disks")) {
			for (xmlNode *d = n->children; d != NULL; d = d->next)
				if (snap_elem(d, "disk") &&
				    snap_attr_is(d, "snapshot", "external"))
					si.si_external = true;
		}
	}
	if (name == NULL) {
		error_set(err, CARVE_EINVAL,
		    "snapshot XML has no usable <name>");
		goto out;
	}
	if (ids_name_check(name, "snapshot name", err) < 0)
		goto out;
	snprintf(si.si_rec.sr_snap.snap_name,
	    sizeof(si.si_rec.sr_snap.snap_name), "%s", name);
	if (desc != NULL &&
	    virt_snap_parse_description(desc, &si.si_rec) == 0) {
		si.si_carve = true;
	} else {
		/* Made outside carve: what libvirt knows of it. */
		si.si_rec.sr_snap.snap_kind = si.si_memory ? VM_SNAPSHOT_FULL :
		    VM_SNAPSHOT_DISK;
		si.si_rec.sr_snap.snap_created_at_ms = created_s * 1000;
	}
	*out = si;
	rc = 0;
out:
	free(name);
	free(desc);
	return rc;
}

int
virt_snap_parse_xml(const char *xml, struct virt_snap_info *out,
    struct carve_error *err)
{
	xmlDocPtr doc = virt_xml_read(xml, SNAP_XML_MAX, "snapshot XML", err);
	int rc;

	if (doc == NULL)
		return -1;
	rc = snap_parse_xml_root(xmlDocGetRootElement(doc), out, err);
	xmlFreeDoc(doc);
	return rc;
}

/* One <snapshot name kind created_at command_id?/> of the copy. */
static int
snap_parse_cache_entry(xmlNode *n, struct virt_snap_rec *r,
    struct carve_error *err)
{
	char *name = NULL, *kind = NULL, *at = NULL, *cmd = NULL;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	for (xmlAttr *a = n->properties; a != NULL; a = a->next)
		if (xmlStrcmp(a->name, BAD_CAST "name") != 0 &&
		    xmlStrcmp(a->name, BAD_CAST "kind") != 0 &&
		    xmlStrcmp(a->name, BAD_CAST "created_at") != 0 &&
		    xmlStrcmp(a->name, BAD_CAST "command_id") != 0)
			return error_set(err, CARVE_EINVAL, "snapshot records: "
			    "unknown attribute on <snapshot>");
	if (n->children != NULL)
		return error_set(err, CARVE_EINVAL,
		    "snapshot records: <snapshot> must be empty");
	name = snap_attr(n, "name", IDS_NAME_MAX);
	kind = snap_attr(n, "kind", 16);
	at = snap_attr(n, "created_at", 20);
	cmd = snap_attr(n, "command_id", IDS_UUID_LEN);
	if (name == NULL || ids_name_check(name, "snapshot name", err) < 0) {
		error_set(err, CARVE_EINVAL, "snapshot records: bad name");
		goto out;
	}
	if (kind == NULL ||
	    vm_snapshot_kind_parse(kind, &r->sr_snap.snap_kind) < 0 ||
	    at == NULL ||
	    snap_parse_ms(at, &r->sr_snap.snap_created_at_ms) < 0 ||
	    (cmd != NULL && !ids_uuid_valid(cmd))) {
		error_set(err, CARVE_EINVAL, "snapshot records: bad <snapshot> "
		    "of \"%s\"", name);
		goto out;
	}
	snprintf(r->sr_snap.snap_name, sizeof(r->sr_snap.snap_name), "%s",
	    name);
	if (cmd != NULL)
		ids_uuid_normalize(cmd, r->sr_command_id);
	rc = 0;
out:
	free(name);
	free(kind);
	free(at);
	free(cmd);
	return rc;
}

static int
snap_parse_cache_revert(xmlNode *n, struct virt_snap_cache *c,
    struct carve_error *err)
{
	char *cmd = snap_attr(n, "command_id", IDS_UUID_LEN);
	char *run = snap_attr(n, "was_running", 3);
	char *phase = snap_attr(n, "phase", 8);
	int rc = -1;

	if (cmd == NULL || !ids_uuid_valid(cmd) || run == NULL ||
	    (strcmp(run, "yes") != 0 && strcmp(run, "no") != 0) ||
	    phase == NULL || n->children != NULL) {
		error_set(err, CARVE_EINVAL, "snapshot records: bad <revert>");
		goto out;
	}
	for (size_t i = VIRT_SNAP_PHASE_BEFORE; i < SNAP_NPHASES; i++)
		if (strcmp(phase, snap_phase_names[i]) == 0)
			c->sc_phase = (enum virt_snap_phase)i;
	if (c->sc_phase == VIRT_SNAP_PHASE_NONE) {
		error_set(err, CARVE_EINVAL,
		    "snapshot records: bad revert phase");
		goto out;
	}
	ids_uuid_normalize(cmd, c->sc_revert_cmd);
	c->sc_was_running = strcmp(run, "yes") == 0;
	rc = 0;
out:
	free(cmd);
	free(run);
	free(phase);
	return rc;
}

static const struct virt_snap_rec *
snap_cache_find(const struct virt_snap_cache *cache, const char *name)
{
	for (unsigned i = 0; i < cache->sc_n; i++)
		if (strcmp(cache->sc_recs[i].sr_snap.snap_name, name) == 0)
			return &cache->sc_recs[i];
	return NULL;
}

/* One more <snapshot> into c: at most VM_SNAPSHOTS_MAX, names unique. */
static int
snap_cache_add(xmlNode *n, struct virt_snap_cache *c, struct carve_error *err)
{
	struct virt_snap_rec *r = &c->sc_recs[c->sc_n];

	if (c->sc_n == VM_SNAPSHOTS_MAX)
		return error_set(err, CARVE_EINVAL,
		    "snapshot records: more than %d", VM_SNAPSHOTS_MAX);
	if (snap_parse_cache_entry(n, r, err) < 0)
		return -1;
	if (snap_cache_find(c, r->sr_snap.snap_name) != NULL)
		return error_set(err, CARVE_EINVAL,
		    "snapshot records: a name appears twice");
	c->sc_n++;
	return 0;
}

int
virt_snap_parse_cache(const char *xml, struct virt_snap_cache *out,
    struct carve_error *err)
{
	struct virt_snap_cache *c = xcalloc(1, sizeof(*c));
	xmlDocPtr doc;
	xmlNode *root;
	bool seen_revert = false;
	int rc = -1;

	doc = virt_xml_read(xml, SNAP_CACHE_MAX, "snapshot records", err);
	if (doc == NULL)
		goto out;
	root = xmlDocGetRootElement(doc);
	/* libvirt hands the element back without its namespace. */
	if (!snap_elem(root, "snapshots") || (root->ns != NULL &&
	    xmlStrcmp(root->ns->href, BAD_CAST VIRT_SNAP_NS) != 0) ||
	    root->properties != NULL) {
		error_set(err, CARVE_EINVAL,
		    "snapshot records: expected a bare <snapshots>");
		goto out;
	}
	for (xmlNode *n = root->children; n != NULL; n = n->next) {
		if (n->type == XML_COMMENT_NODE ||
		    (n->type == XML_TEXT_NODE && xmlIsBlankNode(n)))
			continue;
		if (snap_elem(n, "snapshot")) {
			if (snap_cache_add(n, c, err) < 0)
				goto out;
		} else if (snap_elem(n, "revert") && !seen_revert) {
			if (snap_parse_cache_revert(n, c, err) < 0)
				goto out;
			seen_revert = true;
		} else {
			error_set(err, CARVE_EINVAL, "snapshot records: "
			    "unexpected content in <snapshots>");
			goto out;
		}
	}
	*out = *c;
	rc = 0;
out:
	xmlFreeDoc(doc);
	free(c);
	return rc;
}

static void
snap_parse_disk(xmlNode *n, struct virt_snap_dom *out)
{
	char *device = snap_attr(n, "device", 16), *fmt = NULL, *dev = NULL;
	bool readonly = false;

	/* Read-only disks and cdroms are left out of a snapshot by libvirt. */
	if (device != NULL && strcmp(device, "disk") != 0) {
		free(device);
		return;
	}
	free(device);
	for (xmlNode *c = n->children; c != NULL; c = c->next) {
		if (snap_elem(c, "readonly"))
			readonly = true;
		else if (snap_elem(c, "driver") && fmt == NULL)
			fmt = snap_attr(c, "type",
			    sizeof(out->sd_bad_format) - 1);
		else if (snap_elem(c, "target") && dev == NULL)
			dev = snap_attr(c, "dev", sizeof(out->sd_bad_disk) - 1);
	}
	if (!readonly) {
		out->sd_disks++;
		if (out->sd_bad_disk[0] == '\0' &&
		    (fmt == NULL || strcmp(fmt, "qcow2") != 0)) {
			snprintf(out->sd_bad_disk, sizeof(out->sd_bad_disk),
			    "%s", dev != NULL ? dev : "?");
			snprintf(out->sd_bad_format, sizeof(out->sd_bad_format),
			    "%s", fmt != NULL ? fmt : "undeclared");
		}
	}
	free(fmt);
	free(dev);
}

int
virt_snap_parse_domain(const char *xml, struct virt_snap_dom *out,
    struct carve_error *err)
{
	xmlDocPtr doc = virt_xml_read(xml, SNAP_XML_MAX, "domain XML", err);
	xmlNode *root;

	if (doc == NULL)
		return -1;
	memset(out, 0, sizeof(*out));
	root = xmlDocGetRootElement(doc);
	if (!snap_elem(root, "domain")) {
		xmlFreeDoc(doc);
		return error_set(err, CARVE_EINVAL,
		    "domain XML has no <domain> root");
	}
	out->sd_test = snap_attr_is(root, "type", "test");
	for (xmlNode *n = root->children; n != NULL; n = n->next) {
		if (!snap_elem(n, "devices"))
			continue;
		for (xmlNode *dv = n->children; dv != NULL; dv = dv->next) {
			if (snap_elem(dv, "disk"))
				snap_parse_disk(dv, out);
			if (!snap_elem(dv, "channel"))
				continue;
			for (xmlNode *t = dv->children; t != NULL; t = t->next)
				if (snap_elem(t, "target") &&
				    snap_attr_is(t, "name", SNAP_AGENT_CHANNEL))
					out->sd_agent = true;
		}
	}
	xmlFreeDoc(doc);
	return 0;
}

/* ------------------------------------------------------------ libvirt */

/* The thread's libvirt error: a vanished domain is not_found. */
static int
snap_fail(virConnectPtr c, struct carve_error *err, const char *what)
{
	if (virt_ops_errcode_is(VIR_ERR_NO_DOMAIN))
		return error_set(err, CARVE_ENOTFOUND, "%s: the VM is gone",
		    what);
	return virt_ops_fail(c, err, what);
}

/* The copy in the domain's metadata; empty when there is none or it does
 * not read (every snapshot's XML is read then). */
static int
snap_cache_load(virConnectPtr c, virDomainPtr d, struct virt_snap_cache *cache,
    struct carve_error *err)
{
	struct carve_error lerr = { 0 };
	char *xml;

	memset(cache, 0, sizeof(*cache));
	xml = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, VIRT_SNAP_NS,
	    VIR_DOMAIN_AFFECT_CURRENT);
	if (xml == NULL) {
		if (virt_ops_errcode_is(VIR_ERR_NO_DOMAIN_METADATA))
			return 0;
		return snap_fail(c, err, "reading the snapshot records");
	}
	if (virt_snap_parse_cache(xml, cache, &lerr) < 0) {
		log_warn("snap", "domain %s: ignoring its snapshot records: %s",
		    virDomainGetName(d), lerr.message);
		memset(cache, 0, sizeof(*cache));
	}
	free(xml);
	return 0;
}

static int
snap_cache_store(virConnectPtr c, virDomainPtr d,
    const struct virt_snap_cache *cache, struct carve_error *err)
{
	unsigned flags = VIR_DOMAIN_AFFECT_CONFIG;
	char *xml = virt_snap_cache_xml(cache, err);
	int rc;

	if (xml == NULL)
		return -1;
	if (virDomainIsActive(d) == 1)
		flags |= VIR_DOMAIN_AFFECT_LIVE;
	rc = virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, xml,
	    VIRT_SNAP_PREFIX, VIRT_SNAP_NS, flags);
	/* Stopped in between: the live definition is gone with it. */
	if (rc < 0 && (flags & VIR_DOMAIN_AFFECT_LIVE) &&
	    virDomainIsActive(d) == 0)
		rc = virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, xml,
		    VIRT_SNAP_PREFIX, VIRT_SNAP_NS, VIR_DOMAIN_AFFECT_CONFIG);
	free(xml);
	if (rc < 0)
		return snap_fail(c, err, "writing the snapshot records");
	return 0;
}

/* Written after the effect: a failure only costs the next listing reads. */
static void
snap_cache_store_soft(virConnectPtr c, virDomainPtr d,
    const struct virt_snap_cache *cache)
{
	struct carve_error lerr = { 0 };

	if (snap_cache_store(c, d, cache, &lerr) < 0)
		log_warn("snap", "domain %s: %s", virDomainGetName(d),
		    lerr.message);
}

/* Every snapshot libvirt has of a domain, with carve's records. */
struct snap_list {
	size_t sl_n;
	struct virt_snap_rec *sl_recs;
};

static int
snap_rec_cmp(const void *x, const void *y)
{
	const struct virt_snap_rec *a = x, *b = y;

	if (a->sr_snap.snap_created_at_ms != b->sr_snap.snap_created_at_ms)
		return a->sr_snap.snap_created_at_ms <
		    b->sr_snap.snap_created_at_ms ? -1 : 1;
	return strcmp(a->sr_snap.snap_name, b->sr_snap.snap_name);
}

static const struct virt_snap_rec *
snap_list_find(const struct snap_list *l, const char *name)
{
	for (size_t i = 0; i < l->sl_n; i++)
		if (strcmp(l->sl_recs[i].sr_snap.snap_name, name) == 0)
			return &l->sl_recs[i];
	return NULL;
}

/*
 * One snapshot's record from its XML. Returns 1 when read, 0 when it is to
 * be left out (gone meanwhile, or not something carve can name), -1 with
 * err when the connection failed.
 */
static int
snap_read_one(virConnectPtr c, virDomainSnapshotPtr s,
    struct virt_snap_info *si, struct carve_error *err)
{
	struct carve_error lerr = { 0 };
	char *xml = virDomainSnapshotGetXMLDesc(s, 0);
	int rc;

	if (xml == NULL) {
		if (virt_ops_errcode_is(VIR_ERR_NO_DOMAIN_SNAPSHOT))
			return 0;
		virt_ops_fail(c, &lerr, "reading a snapshot");
		if (lerr.code == CARVE_EUNAVAIL) {
			*err = lerr;
			return -1;
		}
		log_warn("snap", "snapshot %s: %s", virDomainSnapshotGetName(s),
		    lerr.message);
		return 0;
	}
	rc = virt_snap_parse_xml(xml, si, &lerr);
	free(xml);
	if (rc < 0) {
		log_warn("snap", "leaving snapshot out: %s", lerr.message);
		return 0;
	}
	return 1;
}

/* libvirt's list, records from cache where it has them. */
static int
snap_list_read(virConnectPtr c, virDomainPtr d,
    const struct virt_snap_cache *cache, struct snap_list *out,
    struct carve_error *err)
{
	virDomainSnapshotPtr *snaps = NULL;
	int n, rc = 0;

	memset(out, 0, sizeof(*out));
	if ((n = virDomainListAllSnapshots(d, &snaps, 0)) < 0)
		return snap_fail(c, err, "listing snapshots");
	out->sl_recs = xcalloc((size_t)n + 1, sizeof(*out->sl_recs));
	for (int i = 0; i < n; i++) {
		const char *name = virDomainSnapshotGetName(snaps[i]);
		const struct virt_snap_rec *cached;
		struct virt_snap_info si;
		int got;

		if (rc == 0 && name != NULL &&
		    (cached = snap_cache_find(cache, name)) != NULL) {
			out->sl_recs[out->sl_n++] = *cached;
		} else if (rc == 0) {
			got = snap_read_one(c, snaps[i], &si, err);
			if (got < 0)
				rc = -1;
			else if (got > 0)
				out->sl_recs[out->sl_n++] = si.si_rec;
		}
		virDomainSnapshotFree(snaps[i]);
	}
	free(snaps);
	if (rc < 0) {
		free(out->sl_recs);
		memset(out, 0, sizeof(*out));
		return -1;
	}
	qsort(out->sl_recs, out->sl_n, sizeof(*out->sl_recs), snap_rec_cmp);
	return 0;
}

static void
snap_list_free(struct snap_list *l)
{
	free(l->sl_recs);
	memset(l, 0, sizeof(*l));
}

/* The copy a list makes, without a revert marker. */
static void
snap_cache_from(struct virt_snap_cache *cache, const struct snap_list *l)
{
	memset(cache, 0, sizeof(*cache));
	for (size_t i = 0; i < l->sl_n && i < VM_SNAPSHOTS_MAX; i++)
		cache->sc_recs[cache->sc_n++] = l->sl_recs[i];
}

static void
snap_list_to_vm(const struct snap_list *l, struct vm_info *vm)
{
	if (l->sl_n > VM_SNAPSHOTS_MAX)
		log_warn("snap", "VM %s has %zu snapshots; reporting the "
		    "oldest %d", vm->vm_id, l->sl_n, VM_SNAPSHOTS_MAX);
	vm->vm_nsnapshots = 0;
	for (size_t i = 0; i < l->sl_n && i < VM_SNAPSHOTS_MAX; i++)
		vm->vm_snapshots[vm->vm_nsnapshots++] = l->sl_recs[i].sr_snap;
	vm->vm_snapshots_known = true;
}

int
virt_snap_read(virConnectPtr c, virDomainPtr d, struct vm_info *vm,
    struct carve_error *err)
{
	struct carve_error lerr = { 0 };
	struct virt_snap_cache *cache;
	struct snap_list l;
	int n, rc = -1;

	vm->vm_snapshots_known = false;
	vm->vm_nsnapshots = 0;
	if ((n = virDomainSnapshotNum(d, 0)) < 0) {
		snap_fail(c, &lerr, "counting snapshots");
		if (lerr.code == CARVE_EUNAVAIL ||
		    lerr.code == CARVE_ENOTFOUND) {
			*err = lerr;
			return -1;
		}
		/* A driver without snapshots: the report says nothing. */
		log_debug("snap", "%s", lerr.message);
		return 0;
	}
	if (n == 0) {
		vm->vm_snapshots_known = true;
		return 0;
	}
	cache = xmalloc(sizeof(*cache));
	if (snap_cache_load(c, d, cache, &lerr) < 0 ||
	    snap_list_read(c, d, cache, &l, &lerr) < 0) {
		if (lerr.code == CARVE_EUNAVAIL || lerr.code == CARVE_ENOTFOUND)
			*err = lerr;
		else {
			log_warn("snap", "VM %s: %s", vm->vm_id, lerr.message);
			rc = 0;
		}
		goto out;
	}
	snap_list_to_vm(&l, vm);
	snap_list_free(&l);
	rc = 0;
out:
	free(cache);
	return rc;
}

/* ---- the commands ---- */

/* What every command starts from. */
struct snap_ctx {
	virDomainPtr d;
	struct vm_info vm;             /* record and state, no snapshots */
	struct virt_snap_cache cache;
	struct snap_list list;
	struct virt_snap_dom dom;
};

static int
snap_begin(virConnectPtr c, const char *vm_id, struct snap_ctx *x,
    bool need_dom, struct carve_error *err)
{
	char *xml;
	int rc;

	memset(x, 0, sizeof(*x));
	if ((x->d = virt_ops_domain(c, vm_id, &x->vm, err)) == NULL)
		return -1;
	if (need_dom) {
		if ((xml = virDomainGetXMLDesc(x->d, 0)) == NULL)
			return snap_fail(c, err, "reading the domain");
		rc = virt_snap_parse_domain(xml, &x->dom, err);
		free(xml);
		if (rc < 0)
			return -1;
	}
	if (snap_cache_load(c, x->d, &x->cache, err) < 0 ||
	    snap_list_read(c, x->d, &x->cache, &x->list, err) < 0)
		return -1;
	return 0;
}

static void
snap_end(struct snap_ctx *x)
{
	if (x->d != NULL)
		virDomainFree(x->d);
	snap_list_free(&x->list);
}

static json_object *
snap_data(const char *vm_id, const struct vm_snapshot *s)
{
	json_object *o = json_object_new_object();

	jsonx_add_string(o, "vm_id", vm_id);
	jsonx_add_string(o, "name", s->snap_name);
	jsonx_add_string(o, "kind", vm_snapshot_kind_name(s->snap_kind));
	jsonx_add_int(o, "created_at", s->snap_created_at_ms);
	return o;
}

/* Who made rec, for a conflict message. */
static void
snap_maker(const struct virt_snap_rec *rec, char *out, size_t len)
{
	if (rec->sr_command_id[0] != '\0')
		snprintf(out, len, "by command %s", rec->sr_command_id);
	else
		snprintf(out, len, "outside carve");
}

/* Thaw whatever a freeze left frozen; nothing to do is fine. */
static void
snap_thaw(virDomainPtr d, const char *vm_id)
{
	if (virDomainFSThaw(d, NULL, 0, 0) < 0)
		log_warn("snap", "VM %s: thawing the guest's file systems: %s",
		    vm_id, virGetLastErrorMessage());
}

static int
snap_check_disks(const struct snap_ctx *x, bool quiesce,
    struct carve_error *err)
{
	if (!x->dom.sd_test && x->dom.sd_disks == 0)
		return error_set(err, CARVE_EINVAL, "snapshots need a qcow2 "
		    "root disk: VM %s has no disk (it was not made from an "
		    "image)", x->vm.vm_id);
	if (!x->dom.sd_test && x->dom.sd_bad_disk[0] != '\0')
		return error_set(err, CARVE_EINVAL, "snapshots need qcow2 "
		    "disks: disk %s of VM %s is %s", x->dom.sd_bad_disk,
		    x->vm.vm_id, x->dom.sd_bad_format);
	if (quiesce && !x->dom.sd_agent)
		return error_set(err, CARVE_EINVAL, "quiesce needs the guest "
		    "agent: VM %s has no guest agent channel (%s)", x->vm.vm_id,
		    SNAP_AGENT_CHANNEL);
	return 0;
}

int
virt_snap_create(virConnectPtr c, const char *vm_id, const char *command_id,
    const struct command_snapshot_args *a, int64_t now_ms, bool recovering,
    struct vm_info *out, json_object **data, struct carve_error *err)
{
	struct snap_ctx x;
	const struct virt_snap_rec *have;
	struct virt_snap_rec rec;
	virDomainSnapshotPtr s;
	char *xml = NULL, who[80];
	bool frozen = false, created = false;
	int rc = -1;

	if (snap_begin(c, vm_id, &x, true, err) < 0 ||
	    snap_check_disks(&x, a->quiesce, err) < 0)
		goto out;
	/* A run that died between freeze and thaw left the guest frozen. */
	if (recovering && a->quiesce && virDomainIsActive(x.d) == 1)
		snap_thaw(x.d, vm_id);
	if ((have = snap_list_find(&x.list, a->name)) != NULL) {
		if (strcmp(have->sr_command_id, command_id) == 0) {
			rec = *have;
			goto done;
		}
		snap_maker(have, who, sizeof(who));
		error_set(err, CARVE_ECONFLICT, "VM %s already has a snapshot "
		    "named \"%s\" (made %s)", vm_id, a->name, who);
		goto out;
	}
	if (x.list.sl_n >= VM_SNAPSHOTS_MAX) {
		error_set(err, CARVE_ECONFLICT, "VM %s has %zu snapshots, the "
		    "most a VM may have; delete one first", vm_id, x.list.sl_n);
		goto out;
	}
	memset(&rec, 0, sizeof(rec));
	snprintf(rec.sr_snap.snap_name, sizeof(rec.sr_snap.snap_name), "%s",
	    a->name);
	rec.sr_snap.snap_kind = a->kind;
	rec.sr_snap.snap_created_at_ms = now_ms;
	snprintf(rec.sr_command_id, sizeof(rec.sr_command_id), "%s",
	    command_id);
	if ((xml = virt_snap_create_xml(&rec, err)) == NULL)
		goto out;
	/* A shut-off VM has nothing in flight to quiesce. */
	if (a->quiesce && virDomainIsActive(x.d) == 1) {
		if (virDomainFSFreeze(x.d, NULL, 0, 0) < 0) {
			snap_fail(c, err, "freezing the guest's file systems");
			goto out;
		}
		frozen = true;
	}
	s = virDomainSnapshotCreateXML(x.d, xml,
	    VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC);
	if (s == NULL)
		snap_fail(c, err, "taking the snapshot");
	if (frozen)
		snap_thaw(x.d, vm_id);
	if (s == NULL)
		goto out;
	virDomainSnapshotFree(s);
	created = true;
	{
		struct virt_snap_cache *cache = xmalloc(sizeof(*cache));

		snap_cache_from(cache, &x.list);
		cache->sc_recs[cache->sc_n++] = rec;
		snap_cache_store_soft(c, x.d, cache);
		free(cache);
	}
done:
	if (virt_op_get(c, vm_id, out, err) < 0)
		goto out;
	*data = snap_data(vm_id, &rec.sr_snap);
	jsonx_add_bool(*data, "created", created);
	if (a->quiesce && created)
		jsonx_add_bool(*data, "quiesced", frozen);
	rc = 0;
out:
	free(xml);
	snap_end(&x);
	return rc;
}

int
virt_snap_delete(virConnectPtr c, const char *vm_id, const char *command_id,
    const char *name, bool recovering, struct vm_info *out,
    json_object **data, struct carve_error *err)
{
	struct snap_ctx x;
	struct virt_snap_cache *cache = NULL;
	virDomainSnapshotPtr s = NULL;
	bool deleted = false;
	int rc = -1;

	(void)command_id;
	if (snap_begin(c, vm_id, &x, false, err) < 0)
		goto out;
	if (snap_list_find(&x.list, name) != NULL) {
		s = virDomainSnapshotLookupByName(x.d, name, 0);
		if (s != NULL && virDomainSnapshotDelete(s, 0) == 0)
			deleted = true;
		else if (!virt_ops_errcode_is(VIR_ERR_NO_DOMAIN_SNAPSHOT)) {
			snap_fail(c, err, "deleting the snapshot");
			goto out;
		}
	}
	/* Gone before we looked: the interrupted run may have deleted it. */
	if (!deleted && !recovering) {
		error_set(err, CARVE_ENOTFOUND, "VM %s has no snapshot named "
		    "\"%s\"", vm_id, name);
		goto out;
	}
	cache = xmalloc(sizeof(*cache));
	memset(cache, 0, sizeof(*cache));
	for (size_t i = 0; i < x.list.sl_n && cache->sc_n < VM_SNAPSHOTS_MAX;
	    i++)
		if (strcmp(x.list.sl_recs[i].sr_snap.snap_name, name) != 0)
			cache->sc_recs[cache->sc_n++] = x.list.sl_recs[i];
	snap_cache_store_soft(c, x.d, cache);
	if (virt_op_get(c, vm_id, out, err) < 0)
		goto out;
	*data = json_object_new_object();
	jsonx_add_string(*data, "vm_id", vm_id);
	jsonx_add_string(*data, "name", name);
	jsonx_add_bool(*data, "deleted", true);
	if (!deleted)
		jsonx_add_bool(*data, "recovered", true);
	rc = 0;
out:
	if (s != NULL)
		virDomainSnapshotFree(s);
	free(cache);
	snap_end(&x);
	return rc;
}

/*
 * Whether libvirt already reverted d to name: the domain's state says "from
 * snapshot" and name is the current snapshot.
 */
static bool
snap_reverted(virDomainPtr d, const char *name)
{
	virDomainSnapshotPtr cur;
	int state, reason;
	bool from, is;

	if (virDomainGetState(d, &state, &reason, 0) < 0)
		return false;
	from = (state == VIR_DOMAIN_RUNNING &&
	    reason == VIR_DOMAIN_RUNNING_FROM_SNAPSHOT) ||
	    (state == VIR_DOMAIN_PAUSED &&
	    reason == VIR_DOMAIN_PAUSED_FROM_SNAPSHOT) ||
	    (state == VIR_DOMAIN_SHUTOFF &&
	    reason == VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT);
	if (!from || (cur = virDomainSnapshotCurrent(d, 0)) == NULL)
		return false;
	is = strcmp(virDomainSnapshotGetName(cur), name) == 0;
	virDomainSnapshotFree(cur);
	return is;
}

/* The copy of x's list with a revert marker. */
static int
snap_mark(virConnectPtr c, struct snap_ctx *x, const char *command_id,
    bool was_running, enum virt_snap_phase phase, bool soft,
    struct carve_error *err)
{
	struct virt_snap_cache *cache = xmalloc(sizeof(*cache));
	int rc = 0;

	snap_cache_from(cache, &x->list);
	cache->sc_phase = phase;
	snprintf(cache->sc_revert_cmd, sizeof(cache->sc_revert_cmd), "%s",
	    command_id);
	cache->sc_was_running = was_running;
	if (soft)
		snap_cache_store_soft(c, x->d, cache);
	else
		rc = snap_cache_store(c, x->d, cache, err);
	free(cache);
	return rc;
}

int
virt_snap_revert(virConnectPtr c, const char *vm_id, const char *command_id,
    const char *name, bool recovering, struct vm_info *out,
    json_object **data, struct carve_error *err)
{
	struct snap_ctx x;
	const struct virt_snap_rec *have;
	struct virt_snap_info si;
	virDomainSnapshotPtr s = NULL;
	struct vm_snapshot target;
	unsigned flags = 0;
	bool was_running, disk;
	int rc = -1, got;

	if (snap_begin(c, vm_id, &x, false, err) < 0)
		goto out;
	if ((have = snap_list_find(&x.list, name)) == NULL) {
		error_set(err, CARVE_ENOTFOUND, "VM %s has no snapshot named "
		    "\"%s\"", vm_id, name);
		goto out;
	}
	target = have->sr_snap;
	disk = target.snap_kind == VM_SNAPSHOT_DISK;
	if ((s = virDomainSnapshotLookupByName(x.d, name, 0)) == NULL) {
		if (virt_ops_errcode_is(VIR_ERR_NO_DOMAIN_SNAPSHOT))
			error_set(err, CARVE_ENOTFOUND, "VM %s has no snapshot "
			    "named \"%s\"", vm_id, name);
		else
			snap_fail(c, err, "looking the snapshot up");
		goto out;
	}
	if ((got = snap_read_one(c, s, &si, err)) <= 0) {
		if (got == 0)
			error_set(err, CARVE_EHYPERVISOR, "cannot read "
			    "snapshot \"%s\" of VM %s", name, vm_id);
		goto out;
	}
	if (si.si_external) {
		error_set(err, CARVE_EINVAL, "snapshot \"%s\" of VM %s is "
		    "external (made outside carve): libvirt 9.0 cannot revert "
		    "to it", name, vm_id);
		goto out;
	}
	was_running = virDomainIsActive(x.d) == 1;
	if (recovering) {
		if (x.cache.sc_phase != VIRT_SNAP_PHASE_NONE &&
		    strcmp(x.cache.sc_revert_cmd, command_id) == 0) {
			was_running = x.cache.sc_was_running;
			if (x.cache.sc_phase == VIRT_SNAP_PHASE_DONE)
				goto report;
			if (x.cache.sc_phase == VIRT_SNAP_PHASE_AFTER)
				goto finish;
			/* "before": libvirt never replaced the definition. */
		} else if (snap_reverted(x.d, name)) {
			/* Caught between libvirt's revert and the marker: the
			 * run state before is lost; a disk revert boots. */
			was_running = true;
			goto finish;
		}
	}
	if (snap_mark(c, &x, command_id, was_running, VIRT_SNAP_PHASE_BEFORE,
	    false, err) < 0)
		goto out;
	/* A disk snapshot's saved memory must never run: start paused. */
	if (disk && si.si_memory)
		flags = VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED;
	if (virDomainRevertToSnapshot(s, flags) < 0) {
		/*
		 * What the user asked is to go back to the snapshot: where
		 * libvirt only calls it risky (a definition it cannot prove
		 * compatible), insist.
		 */
		if (virt_ops_errcode_is(VIR_ERR_SNAPSHOT_REVERT_RISKY)) {
			log_warn("snap", "VM %s: revert to %s is risky (%s); "
			    "forcing it", vm_id, name,
			    virGetLastErrorMessage());
			if (virDomainRevertToSnapshot(s, flags |
			    VIR_DOMAIN_SNAPSHOT_REVERT_FORCE) == 0)
				goto reverted;
		}
		snap_fail(c, err, "reverting to the snapshot");
		if (err->code != CARVE_EUNAVAIL)
			(void)snap_mark(c, &x, command_id, was_running,
			    VIRT_SNAP_PHASE_NONE, true, NULL);
		goto out;
	}
reverted:
	(void)snap_mark(c, &x, command_id, was_running, VIRT_SNAP_PHASE_AFTER,
	    true, NULL);
finish:
	if (disk) {
		if (virDomainIsActive(x.d) == 1 && virDomainDestroy(x.d) < 0 &&
		    virDomainIsActive(x.d) == 1) {
			snap_fail(c, err,
			    "powering the VM off after the revert");
			goto out;
		}
		if (was_running && virDomainIsActive(x.d) != 1 &&
		    virDomainCreate(x.d) < 0) {
			snap_fail(c, err,
			    "booting the VM from the reverted disk");
			goto out;
		}
	}
	(void)snap_mark(c, &x, command_id, was_running, VIRT_SNAP_PHASE_DONE,
	    true, NULL);
report:
	if (virt_op_get(c, vm_id, out, err) < 0)
		goto out;
	*data = snap_data(vm_id, &target);
	jsonx_add_string(*data, "state", vm_state_name(out->vm_state));
	if (disk)
		jsonx_add_bool(*data, "booted", was_running);
	rc = 0;
out:
	if (s != NULL)
		virDomainSnapshotFree(s);
	snap_end(&x);
	return rc;
}
