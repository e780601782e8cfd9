/*
 * classify.c - nDPI glue: per-flow detection state that lives only for the
 * first packets, so classification costs bounded memory per flow.
 */
#include "decoder/classify.h"

#include <ndpi/ndpi_api.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct classifier {
	struct ndpi_detection_module_struct *ndpi;
};

struct classify_state {
	struct ndpi_flow_struct *flow;
	uint32_t packets;
	ndpi_protocol proto;
};

/* Workers make their classifiers lazily, maybe at the same moment; nDPI's
 * set-up and tear-down (libgcrypt initialisation among them) are not
 * thread-safe, its per-module detection is. */
static pthread_mutex_t ndpi_setup = PTHREAD_MUTEX_INITIALIZER;

struct classifier *classifier_new(void)
{
	struct classifier *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	pthread_mutex_lock(&ndpi_setup);
	c->ndpi = ndpi_init_detection_module(ndpi_no_prefs);
	if (c->ndpi) {
		NDPI_PROTOCOL_BITMASK all;
		NDPI_BITMASK_SET_ALL(all);
		ndpi_set_protocol_detection_bitmask2(c->ndpi, &all);
		ndpi_finalize_initialization(c->ndpi);
	}
	pthread_mutex_unlock(&ndpi_setup);
	if (!c->ndpi) {
		free(c);
		return NULL;
	}
	return c;
}

void classifier_free(struct classifier *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&ndpi_setup);
	ndpi_exit_detection_module(c->ndpi);
	pthread_mutex_unlock(&ndpi_setup);
	free(c);
}

static void result_from(struct classifier *c, struct classify_state *s, struct classify_result *res)
{
	ndpi_protocol p = s->proto;
	res->master = p.master_protocol;
	res->app = p.app_protocol;
	uint16_t main_id = p.master_protocol ? p.master_protocol : p.app_protocol;
	res->smtp = main_id == NDPI_PROTOCOL_MAIL_SMTP || main_id == NDPI_PROTOCOL_MAIL_SMTPS ||
		    p.app_protocol == NDPI_PROTOCOL_MAIL_SMTP ||
		    p.app_protocol == NDPI_PROTOCOL_MAIL_SMTPS;
	const char *name = ndpi_get_proto_name(c->ndpi, main_id);
	snprintf(res->name, sizeof(res->name), "%s", name ? name : "Unknown");
	res->cleartext_credentials = (s->flow->risk &
				      ((ndpi_risk)1 << NDPI_CLEAR_TEXT_CREDENTIALS)) != 0;
}

void classify_finish(struct classifier *c, struct classify_state **st, struct classify_result *res)
{
	struct classify_state *s = *st;
	if (!s || res->done)
		return;
	if (s->proto.app_protocol == NDPI_PROTOCOL_UNKNOWN) {
		uint8_t guessed = 0;
		s->proto = ndpi_detection_giveup(c->ndpi, s->flow, 1, &guessed);
	}
	result_from(c, s, res);
	res->done = 1;
	ndpi_free_flow(s->flow);
	free(s);
	*st = NULL;
}

int classify_packet(struct classifier *c, struct classify_state **st, const uint8_t *l3,
		    size_t l3_len, uint64_t ts_ns, int extra, struct classify_result *res)
{
	if (res->done)
		return 1;
	struct classify_state *s = *st;
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return 0;
		s->flow = ndpi_flow_malloc(SIZEOF_FLOW_STRUCT);
		if (!s->flow) {
			free(s);
			return 0;
		}
		memset(s->flow, 0, SIZEOF_FLOW_STRUCT);
		*st = s;
	}
	if (l3_len > 0xffff)
		l3_len = 0xffff;
	s->proto = ndpi_detection_process_packet(c->ndpi, s->flow, l3, (unsigned short)l3_len,
						 ts_ns / 1000000u);
	s->packets++;
	int detected = s->proto.app_protocol != NDPI_PROTOCOL_UNKNOWN ||
		       s->proto.master_protocol != NDPI_PROTOCOL_UNKNOWN;
	if ((detected && (!extra || !ndpi_extra_dissection_possible(c->ndpi, s->flow))) ||
	    s->packets >= CLASSIFY_MAX_PACKETS) {
		classify_finish(c, st, res);
		return 1;
	}
	return 0;
}
