package bus_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/courierbus/courier/bus"
)

func TestBindings(t *testing.T) {
	b, err := bus.New()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := bus.NewTopic[Order](b, "shop.orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.NewEndpoint[string, []Order](b, "shop.find"); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.NewEndpoint[string, int](b, "shop.orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PublishRaw(context.Background(), "shop.raw", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	got := b.Bindings()
	want := []bus.Binding{
		{Name: "shop.find", Endpoint: true, Type: reflect.TypeFor[string](), Reply: reflect.TypeFor[[]Order]()},
		{Name: "shop.orders", Type: reflect.TypeFor[Order](), Codec: bus.JSON},
		{Name: "shop.orders", Endpoint: true, Type: reflect.TypeFor[string](), Reply: reflect.TypeFor[int]()},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func ExampleBus_Bindings() {
	b, err := bus.New()
	if err != nil {
		panic(err)
	}
	defer b.Close()
	if _, err := bus.NewTopic[Order](b, "shop.orders"); err != nil {
		panic(err)
	}
	for _, bd := range b.Bindings() {
		fmt.Println(bd.Name, bd.Type)
	}
	// Output: shop.orders bus_test.Order
}
