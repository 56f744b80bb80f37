/*
 * linkwright provider plugin ABI, major version 1.
 *
 * This header is the whole contract between the linkwright host and a provider
 * plugin. A plugin is a shared library that exports one symbol,
 *
 *     const lw_plugin_descriptor *linkwright_plugin_v1(void);
 *
 * whose name carries the ABI major version. It returns a pointer to a static
 * descriptor that lives as long as the library (the host never unloads one).
 *
 * Rules of the road:
 *   - Only the types in this file cross the boundary. Status codes, flags and
 *     enumerations are plain integers; a value the reader does not know is
 *     handled as "unknown", never trusted.
 *   - Strings are UTF-8, borrowed as {ptr, len}, valid only for the duration of
 *     the call that receives them, and not NUL-terminated.
 *   - Whoever allocates frees. Results go out through lw_output: the plugin
 *     hands bytes to a host callback, the host copies them into memory it owns.
 *     An instance made by `instance_new` is freed by the plugin's
 *     `instance_free`.
 *   - Structs grow only by appending fields. Every struct that may grow starts
 *     with a `size` field set by whoever allocated it; a reader never touches a
 *     field that lies beyond `size`.
 *   - A plugin never lets a panic or exception unwind into the host: it catches
 *     it and returns LW_STATUS_PANIC. The host then marks the instance poisoned.
 *   - `build` may be called from several host threads at once on the same
 *     instance: instances must be safe to share.
 *   - The plugin is not on the per-click path. For one destination it returns a
 *     tracked-URL template: the bytes before the click sub-ID (prefix) and the
 *     bytes after it (suffix), plus the longest sub-ID the network keeps and
 *     the characters it allows. The host fills the slot on every click.
 */
#ifndef LINKWRIGHT_PLUGIN_H
#define LINKWRIGHT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "LWPL" read as a little-endian u32. */
#define LW_PLUGIN_MAGIC 0x4C50574Cu
#define LW_ABI_MAJOR 1u
#define LW_ABI_MINOR 0u
/* The exported entry symbol for this major version. */
#define LW_ENTRY_SYMBOL "linkwright_plugin_v1"

/* ---- status codes (int32_t) ------------------------------------------------ */
#define LW_STATUS_OK 0
/* The input is not for this provider (another host name, say). The host tries
 * the next provider. */
#define LW_STATUS_DECLINED 1
/* The input is malformed (not a URL, empty, bad parameter). */
#define LW_STATUS_INVALID_INPUT 2
/* The host is this provider's, but the URL is not a product page. */
#define LW_STATUS_NOT_A_PRODUCT_URL 3
/* A product identifier (an ASIN, say) is malformed. */
#define LW_STATUS_INVALID_PRODUCT_ID 4
/* No provider serves the host (used by the host itself; a plugin declines). */
#define LW_STATUS_UNSUPPORTED_HOST 5
/* The marketplace or region has no tracking ID configured. */
#define LW_STATUS_MARKETPLACE_NOT_CONFIGURED 6
/* The advertiser does not permit deep links. */
#define LW_STATUS_DEEPLINK_NOT_PERMITTED 7
/* The publisher is not approved for this advertiser or brand. */
#define LW_STATUS_NOT_APPROVED 8
/* A short link (amzn.to, say) that must be expanded before it can be built.
 * The host follows the redirect and calls `build` again. */
#define LW_STATUS_NEEDS_EXPANSION 9
/* The instance configuration was rejected (from `instance_new`). */
#define LW_STATUS_CONFIG_REJECTED 10
/* `init` failed. */
#define LW_STATUS_INIT_FAILED 11
/* A service the plugin depends on is unavailable; a retry may help. */
#define LW_STATUS_UPSTREAM_UNAVAILABLE 12
/* The plugin caught a panic or exception; the instance is poisoned. */
#define LW_STATUS_PANIC 13
/* Anything else that went wrong inside the plugin. */
#define LW_STATUS_INTERNAL 14

/* ---- descriptor flags (uint32_t) -------------------------------------------- */
/* Every entry point catches panics/exceptions (set by the Rust SDK; a C plugin
 * that cannot unwind sets it too). */
#define LW_PLUGIN_FLAG_CATCHES_PANICS 0x1u

/* ---- sub-ID encodings (uint32_t) ------------------------------------------ */
/* Letters and digits only: [A-Za-z0-9]. */
#define LW_SUBID_ALPHANUMERIC 1u
/* Letters, digits, '-' and '_'. */
#define LW_SUBID_URL_SAFE 2u

/* ---- output fields (uint32_t), the `field` argument of lw_output.write ------ */
/* A human-readable error message for a non-OK status. */
#define LW_FIELD_ERROR 1u
/* Template bytes before the sub-ID slot. */
#define LW_FIELD_PREFIX 2u
/* Template bytes after the sub-ID slot. */
#define LW_FIELD_SUFFIX 3u
/* The canonical destination (the clean product URL the link points at). */
#define LW_FIELD_DESTINATION 4u
/* The marketplace, region or advertiser key the link belongs to. */
#define LW_FIELD_MARKETPLACE 5u
/* A JSON object describing what an instance serves (from `describe`). */
#define LW_FIELD_DESCRIPTION 6u

/* A borrowed UTF-8 string. `ptr` may be NULL only when `len` is 0. */
typedef struct lw_str {
    const uint8_t *ptr;
    size_t len;
} lw_str;

/* One key/value parameter of a link (Awin "clickref2", Amazon "tag", ...). */
typedef struct lw_param {
    lw_str key;
    lw_str value;
} lw_param;

/* Host-owned output. The plugin calls `write` any number of times during one
 * call; each call appends `len` bytes to `field`. Writing to a field the host
 * does not know is ignored. */
typedef struct lw_output {
    uint32_t size; /* sizeof(lw_output) as the host built it */
    uint32_t reserved;
    void *ctx;
    void (*write)(void *ctx, uint32_t field, const uint8_t *ptr, size_t len);
} lw_output;

/* What to build a template for. Allocated by the host. */
typedef struct lw_build_request {
    uint32_t size;  /* sizeof(lw_build_request) as the host built it */
    uint32_t flags; /* none defined yet; 0 */
    lw_str input;   /* a product URL, or a bare product id (an ASIN) */
    lw_str marketplace; /* requested marketplace ("amazon.co.uk"); empty: default */
    const lw_param *params; /* the link's network parameters; may be NULL if 0 */
    size_t params_len;
} lw_build_request;

/* The fixed-size part of a template, filled by the plugin. Allocated by the
 * host, which sets `size`; the plugin writes no field beyond it. The prefix,
 * suffix, destination and marketplace go through lw_output. */
typedef struct lw_template_info {
    uint32_t size;          /* sizeof(lw_template_info) as the host built it */
    uint32_t subid_max_len; /* longest sub-ID the network keeps; 0: no limit */
    uint32_t subid_encoding; /* LW_SUBID_* */
    uint32_t reserved;
} lw_template_info;

/* The static descriptor returned by the entry symbol. */
typedef struct lw_plugin_descriptor {
    uint32_t magic; /* LW_PLUGIN_MAGIC */
    uint32_t size;  /* sizeof(lw_plugin_descriptor) as the plugin was built */
    uint16_t abi_major; /* LW_ABI_MAJOR */
    uint16_t abi_minor; /* LW_ABI_MINOR */
    uint32_t flags;     /* LW_PLUGIN_FLAG_* */
    lw_str name;        /* plugin name, e.g. "amazon" */
    lw_str version;     /* plugin version, e.g. "0.1.0" */

    /* Called once, right after the library is loaded and checked. Returns a
     * status; on failure may write LW_FIELD_ERROR. May be NULL. */
    int32_t (*init)(const lw_output *out);

    /* Makes an instance from its configuration, given as a JSON object (the
     * provider's table from the host config). On success stores the instance
     * in *instance. On failure writes LW_FIELD_ERROR and returns
     * LW_STATUS_CONFIG_REJECTED (or another status). */
    int32_t (*instance_new)(lw_str config_json, const lw_output *out, void **instance);

    /* Frees an instance made by instance_new. */
    void (*instance_free)(void *instance);

    /* Builds a template for a request. On LW_STATUS_OK writes LW_FIELD_PREFIX,
     * LW_FIELD_SUFFIX, LW_FIELD_DESTINATION and optionally LW_FIELD_MARKETPLACE
     * and fills *info. Otherwise writes LW_FIELD_ERROR. */
    int32_t (*build)(const void *instance, const lw_build_request *request,
                     lw_template_info *info, const lw_output *out);

    /* Writes a JSON object describing what the instance serves
     * (marketplaces, advertisers, hosts) to LW_FIELD_DESCRIPTION. May be NULL. */
    int32_t (*describe)(const void *instance, const lw_output *out);
} lw_plugin_descriptor;

/* The entry symbol's type. */
typedef const lw_plugin_descriptor *(*lw_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* LINKWRIGHT_PLUGIN_H */
