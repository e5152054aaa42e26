/* routes.c -- the one list of route areas.  Each area is a file
 * api/routes_<area>.c ending with API_AREA(<area>, its_table); adding an area
 * is adding X(<area>) below (see api_int.h, "ADDING ROUTES"). */
#include "api_int.h"

#define API_AREAS(X)                                                                               \
    X(core)                                                                                        \
    X(keys)                                                                                        \
    X(surgeries)                                                                                   \
    X(usage)                                                                                       \
    X(recommend)                                                                                   \
    X(catalog)                                                                                     \
    X(assets)                                                                                      \
    X(brands)                                                                                      \
    X(reports)

#define API__AREA_EXTERN(area) extern const api_area api__area_##area;
#define API__AREA_REF(area)    &api__area_##area,

API_AREAS(API__AREA_EXTERN)

const api_area *const api__areas[] = {API_AREAS(API__AREA_REF) NULL};
