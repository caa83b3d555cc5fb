package observe_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/observe"
)

func ExampleNewCollector() {
	b, err := bus.New()
	if err != nil {
		panic(err)
	}
	defer b.Close()
	col, err := observe.NewCollector(b)
	if err != nil {
		panic(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(col) // then: mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	if _, err := b.PublishRaw(context.Background(), "shop.orders", []byte(`{"id":"A-1"}`)); err != nil {
		panic(err)
	}
	families, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, f := range families {
		if f.GetName() == "courier_bus_published_total" {
			for _, m := range f.GetMetric() {
				fmt.Println(f.GetName(), m.GetLabel()[0].GetValue(), m.GetCounter().GetValue())
			}
		}
	}
	// Output:
	// courier_bus_published_total shop.orders 1
}

func ExampleNewAdmin() {
	b, err := bus.New()
	if err != nil {
		panic(err)
	}
	defer b.Close()
	admin, err := observe.NewAdmin(b, observe.BasicAuth("admin", "correct horse"))
	if err != nil {
		panic(err)
	}
	defer admin.Close()
	mux := http.NewServeMux()
	mux.Handle("/admin/", admin)

	for _, password := range []string{"wrong", "correct horse"} {
		req := httptest.NewRequest(http.MethodGet, "/admin/", nil)
		req.SetBasicAuth("admin", password)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		fmt.Println(password, rec.Code)
	}
	// Output:
	// wrong 401
	// correct horse 200
}
