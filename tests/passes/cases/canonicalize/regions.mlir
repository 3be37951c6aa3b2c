// RUN: canonicalize dce
// Folding and identities apply inside cond branches and while regions, with constants
// from outside the region.
func @main(%p: tensor<i1>, %x: tensor<f64>) {
  %two = constant {value = dense<2.0> : tensor<f64>} : () -> tensor<f64>
  %one = constant {value = dense<1.0> : tensor<f64>} : () -> tensor<f64>
  %r = cond %p : (tensor<i1>) -> tensor<f64> {
    %four = mul %two, %two : (tensor<f64>, tensor<f64>) -> tensor<f64>
    %y = mul %x, %four : (tensor<f64>, tensor<f64>) -> tensor<f64>
    yield %y : (tensor<f64>)
  } else {
    %z = mul %x, %one : (tensor<f64>, tensor<f64>) -> tensor<f64>
    yield %z : (tensor<f64>)
  }
  %w = while %r : (tensor<f64>) -> tensor<f64> {
  ^bb0(%a: tensor<f64>):
    %limit = add %two, %two : (tensor<f64>, tensor<f64>) -> tensor<f64>
    %go = less %a, %limit : (tensor<f64>, tensor<f64>) -> tensor<i1>
    condition %go : (tensor<i1>)
  } do {
  ^bb0(%b: tensor<f64>):
    %n = neg %b : (tensor<f64>) -> tensor<f64>
    %nn = neg %n : (tensor<f64>) -> tensor<f64>
    %three = add %two, %one : (tensor<f64>, tensor<f64>) -> tensor<f64>
    %next = add %nn, %three : (tensor<f64>, tensor<f64>) -> tensor<f64>
    yield %next : (tensor<f64>)
  }
  return %w : (tensor<f64>)
}
// CHECK:      cond %arg0
// CHECK-NEXT:   %{{[0-9]+}} = constant {value = dense<4.0> : tensor<f64>}
// CHECK-NEXT:   %{{[0-9]+}} = mul %arg1, %{{[0-9]+}}
// CHECK-NEXT:   yield
// CHECK-NEXT: } else {
// CHECK-NEXT:   yield %arg1
// CHECK:      } do {
// CHECK-NEXT: ^bb0([[B:%arg[0-9]+]]: tensor<f64>):
// CHECK-NEXT:   [[THREE:%[0-9]+]] = constant {value = dense<3.0> : tensor<f64>}
// CHECK-NEXT:   [[NEXT:%[0-9]+]] = add [[B]], [[THREE]]
// CHECK-NEXT:   yield [[NEXT]]
// CHECK-NOT:  neg
