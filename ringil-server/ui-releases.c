/* ui-releases.c: the Releases view: what each uploaded bundle is, who signed it, until when, and where it is assigned. */
#include <inttypes.h>
#include <string.h>

#include "bundle.h"
#include "ui.h"

/*
 * A release uploaded before the server recorded its manifest's details: read them from the stored
 * bundle (verified at upload, named by its SHA-256), for display only. NULL when unreadable.
 */
static json_t *details_from_file(store *db, int64_t id) {
        _cleanup_bundle_ bundle *b = NULL;
        const struct bundle_manifest *m;
        struct release rel;
        json_t *o, *p;

        if (store_release_get(db, id, &rel) < 0 || bundle_open(rel.path, &b) < 0 || bundle_read_unverified(b, &m, NULL) < 0)
                return NULL;
        p = json_array();
        for (size_t i = 0; p && i < m->n_payloads; i++)
                json_array_append_new(p, json_pack("{s:s, s:s, s:I}", "name", m->payloads[i].name, "type",
                                                   bundle_payload_type_to_string(m->payloads[i].type), "size",
                                                   (json_int_t) m->payloads[i].size));
        o = json_pack("{s:I, s:I, s:o}", "built", (json_int_t) m->created, "expires", (json_int_t) m->expires, "payloads", p);
        return o;
}

int ui_page_releases(struct ui_page *p) {
        struct server *srv = p->x->srv;
        json_t *rels = NULL, *r, *pl;
        size_t i, j;
        int k;

        p->title = "Releases";
        p->nav = "releases";
        k = store_releases_json(srv->db, &rels);
        if (k < 0)
                return k;
        html_printf(&p->h, "<h1>Releases</h1><p class=\"lead\">%zu uploaded. Uploads stay on the command line "
                           "(<code>ringil-server upload BUNDLE</code>); the server verified each against its keyring "
                           "before registering it.</p>",
                    json_array_size(rels));
        html_raw(&p->h, "<table id=\"releases\"><thead><tr><th class=\"num\">id</th><th>version</th><th>compatible</th>"
                        "<th>signer</th><th>built</th><th>uploaded</th><th>expires</th><th class=\"num\">size</th>"
                        "<th>payloads</th><th>assigned to</th></tr></thead><tbody>");
        for (i = json_array_size(rels); i-- > 0;) {   /* newest first */
                json_t *legacy = NULL, *d;
                int64_t expires;
                char size[32];

                r = json_array_get(rels, i);
                d = json_object_get(r, "payloads") ? r : (legacy = details_from_file(srv->db, json_integer_value(json_object_get(r, "id"))));
                html_printf(&p->h, "<tr data-release=\"%lld\"><td class=\"num\">%lld</td><td class=\"version\">%s</td>"
                                   "<td>%s</td><td class=\"signer\">%s</td><td>",
                            (long long) json_integer_value(json_object_get(r, "id")),
                            (long long) json_integer_value(json_object_get(r, "id")),
                            json_string_value(json_object_get(r, "version")),
                            json_string_value(json_object_get(r, "compatible")),
                            json_string_value(json_object_get(r, "signer")));
                if (d)
                        ui_time(p, json_integer_value(json_object_get(d, "built")));
                html_raw(&p->h, "</td><td>");
                ui_time(p, json_integer_value(json_object_get(r, "created")));
                html_raw(&p->h, "</td><td class=\"expires\">");
                expires = d ? json_integer_value(json_object_get(d, "expires")) : 0;
                if (expires > 0) {
                        ui_time(p, expires);
                        if (expires < p->now)
                                html_raw(&p->h, " <span class=\"badge s-failed\">expired</span>");
                } else
                        html_raw(&p->h, "<span class=\"muted\">–</span>");
                html_printf(&p->h, "</td><td class=\"num\" title=\"%lld bytes, sha256 %s\">%s</td><td><ul class=\"payloads\">",
                            (long long) json_integer_value(json_object_get(r, "size")),
                            json_string_value(json_object_get(r, "sha256")),
                            html_size((uint64_t) json_integer_value(json_object_get(r, "size")), size));
                json_array_foreach(d ? json_object_get(d, "payloads") : NULL, j, pl) {
                        html_printf(&p->h, "<li><b>%s</b> %s %s", json_string_value(json_object_get(pl, "name")),
                                    json_string_value(json_object_get(pl, "type")),
                                    html_size((uint64_t) json_integer_value(json_object_get(pl, "size")), size));
                        if (json_object_get(pl, "store_path"))
                                html_printf(&p->h, " <code>%s</code>", json_string_value(json_object_get(pl, "store_path")));
                        html_raw(&p->h, "</li>");
                }
                if (!d)
                        html_raw(&p->h, "<li class=\"muted\">not recorded</li>");
                html_printf(&p->h, "</ul></td><td class=\"assigned\">%s</td></tr>",
                            json_string_value(json_object_get(r, "assigned")));
                json_decref(legacy);
        }
        if (json_array_size(rels) == 0)
                html_raw(&p->h, "<tr><td colspan=\"10\" class=\"muted\">No release yet.</td></tr>");
        html_raw(&p->h, "</tbody></table>");
        json_decref(rels);
        return 200;
}
